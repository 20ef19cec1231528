"""One patient of raw LIDC-IDRI: their series folders -> crops and counts.

`process_patient(job)` is what each worker process runs for one patient. A
series folder is a folder holding a series' DICOM files (*.dcm) and its XML
file of readings (*.xml); other files in it are ignored. Per folder:

- The XML files are read first (raw_xml.py). A folder with a chest X-ray
  XML (IdriReadMessage) is skipped and counted without reading its DICOM
  files; so is one whose XML holds no reading session. A folder with DICOM
  files and no XML, or with two XML files of CT readings, is an error.
- The DICOM files are read and checked (raw_dicom.py). The XML's
  SeriesInstanceUid (when given) must be the files', and every outline's
  imageSOP_UID must be one of the files (SOP instance UIDs, not z
  positions, tie an outline to its slice); otherwise an error.
- Per slice holding outlines: each reader's mask of each nodule
  (raw_masks.py), abnormalities and crops (raw_crops.py). Outlines on a
  slice the SliceLocation rule filtered out are counted and dropped.

Several CT series of one patient are each processed with their own XML; their
crops are numbered in the order of their SeriesInstanceUID (raw_crops.py:
names never collide). Abnormalities are counted in 3D: readers' nodules
linked by an abnormality on any slice are one.

The series is the unit of bad input: with `skip_bad_examples` a bad series is
skipped and listed (`BadSeries`), the patient's other series are kept. A
series' crops are written only after all of it was read, so a bad series
leaves no files. Files left by an unfinished earlier run for this patient
are deleted first.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import shutil

from hpu_jax.data.lidc.errors import LidcDataError, data_error, skippable
from hpu_jax.data.lidc.files import natural_key
from hpu_jax.data.lidc.raw_crops import (Mark, crop_stem, group_marks,
                                         make_crop, mask_box, write_crop)
from hpu_jax.data.lidc.raw_dicom import CtSeries, read_series
from hpu_jax.data.lidc.raw_masks import reader_mask
from hpu_jax.data.lidc.raw_report import BadSeries, RawCounts
from hpu_jax.data.lidc.raw_xml import Readings, Roi, read_readings

SERIES_EXPECTED = ('the DICOM files of one CT series (*.dcm) and its XML file '
                   'of readings (*.xml) in one folder, as TCIA ships them')


@dataclasses.dataclass(frozen=True)
class PatientJob:
  """What a worker needs to turn one patient into crops."""
  patient: str
  series_dirs: tuple[str, ...]
  split_dir: str                  # <crops>/<train|val|test>
  hu_window: tuple[float, float]
  skip_bad_examples: bool


@dataclasses.dataclass
class _Crop:
  z_text: str
  image: object
  masks: object


@dataclasses.dataclass
class _SeriesCrops:
  series_uid: str
  crops: list[_Crop]
  counts: RawCounts
  links: list[list[tuple]]   # the nodule keys of each abnormality


def process_patient(job: PatientJob) -> dict:
  """Writes the patient's crops; returns their `RawCounts.to_json()`."""
  for kind in ('images', 'gt'):
    shutil.rmtree(os.path.join(job.split_dir, kind, job.patient),
                  ignore_errors=True)
  counts = RawCounts()
  done: list[_SeriesCrops] = []
  for folder in sorted(job.series_dirs, key=natural_key):
    try:
      result = _process_series(folder, job.hu_window)
    except LidcDataError as exc:
      if not job.skip_bad_examples:
        raise skippable(exc)
      counts.bad_series.append(BadSeries(job.patient, folder, str(exc)))
      continue
    if isinstance(result, RawCounts):   # skipped (X-ray, no readings)
      counts += result
    else:
      done.append(result)
  numbers: collections.Counter[str] = collections.Counter()
  parent: dict[tuple, tuple] = {}
  for series in sorted(done, key=lambda s: s.series_uid):
    counts += series.counts
    for crop in series.crops:
      stem = crop_stem(crop.z_text, numbers[crop.z_text])
      numbers[crop.z_text] += 1
      write_crop(job.split_dir, job.patient, stem, crop.image, crop.masks)
    for keys in series.links:
      _link(parent, keys)
  counts.add('abnormalities', sum(1 for k, p in parent.items() if k == p))
  return counts.to_json()


def _link(parent: dict[tuple, tuple], keys: list[tuple]) -> None:
  def find(k):
    parent.setdefault(k, k)
    while parent[k] != k:
      parent[k] = parent[parent[k]]
      k = parent[k]
    return k
  root = find(keys[0])
  for k in keys[1:]:
    parent[find(k)] = root


def _list_folder(folder: str) -> tuple[list[str], list[str]]:
  names = sorted(os.listdir(folder), key=natural_key)
  files = [n for n in names if os.path.isfile(os.path.join(folder, n))]
  return ([n for n in files if n.lower().endswith('.dcm')],
          [n for n in files if n.lower().endswith('.xml')])


def _find_ct_readings(folder: str, xml_names: list[str],
                      skipped: RawCounts) -> Readings | None:
  """The folder's CT readings; None (counted) for an X-ray or empty XML."""
  if not xml_names:
    raise data_error(folder, 'a series without an XML file of readings',
                     SERIES_EXPECTED)
  all_readings = [read_readings(os.path.join(folder, n)) for n in xml_names]
  if any(r.kind == 'xray' for r in all_readings):
    skipped.add('xray_series')
    return None
  ct = [r for r in all_readings if r.kind == 'ct']
  if len(ct) > 1:
    raise data_error(folder, 'two XML files of CT readings ('
                     f'{", ".join(os.path.basename(r.path) for r in ct)})',
                     'one XML file of readings per series')
  if not ct:
    skipped.add('series_without_readings')
    return None
  return ct[0]


def _process_series(folder: str, hu_window: tuple[float, float]
                    ) -> _SeriesCrops | RawCounts:
  dicom_names, xml_names = _list_folder(folder)
  skipped = RawCounts()
  readings = _find_ct_readings(folder, xml_names, skipped)
  if readings is None:
    return skipped
  series = read_series(folder, dicom_names)
  if readings.series_uid and readings.series_uid != series.series_uid:
    raise data_error(readings.path, f'SeriesInstanceUid '
                     f'{readings.series_uid}, but the DICOM files beside it '
                     f'are of series {series.series_uid}',
                     'the XML file of the series in its folder')
  counts = RawCounts()
  counts.add('series')
  counts.add('dicom_files', series.num_files)
  counts.add('slice_location_mismatch', series.slice_location_mismatch)
  counts.add('slice_location_missing', series.slice_location_missing)
  for name in ('small_nodules', 'non_nodules', 'sessions_dropped',
               'dropped_nodules'):
    counts.add(name, getattr(readings, name))
  counts.add('readings', readings.sessions)
  counts.add('outlined_nodules', len(readings.nodules))
  by_slice = _rois_by_slice(readings, series, counts)
  crops, links = [], []
  for sop_uid in sorted(by_slice, key=lambda u: (series.slices[u].z, u)):
    z_text, marks = _slice_marks(by_slice[sop_uid], series, readings, counts)
    if not marks:
      continue
    hu = series.hu(sop_uid)
    for abnormality in group_marks(marks, series.shape):
      image, masks = make_crop(hu, abnormality, series.spacing, hu_window)
      crops.append(_Crop(z_text, image, masks))
      links.append(abnormality.keys)
  counts.add('crops', len(crops))
  return _SeriesCrops(series.series_uid, crops, counts, links)


def _rois_by_slice(readings: Readings, series: CtSeries, counts: RawCounts
                   ) -> dict[str, list[tuple]]:
  """sop uid -> [(nodule, roi)] on the slices kept; checks every uid."""
  by_slice: dict[str, list[tuple]] = {}
  for nodule in readings.nodules:
    for roi in nodule.rois:
      counts.add('rois')
      counts.add('exclusion_rois', not roi.inclusion)
      if roi.sop_uid in series.filtered:
        counts.add('rois_on_filtered_slices')
        continue
      if roi.sop_uid not in series.slices:
        raise data_error(
            f'{readings.path} (readingSession {nodule.reader + 1}, nodule '
            f'{nodule.nodule_id})', f'a roi on SOP instance UID '
            f'{roi.sop_uid}, which is none of the {series.num_files} DICOM '
            f'files in {series.folder}', 'rois on the slices of the series '
            'whose folder holds the XML file')
      by_slice.setdefault(roi.sop_uid, []).append((nodule, roi))
  return by_slice


def _slice_marks(entries: list[tuple], series: CtSeries, readings: Readings,
                 counts: RawCounts) -> tuple[str, list[Mark]]:
  """The slice's z text (its first roi's) and one mark per reader nodule."""
  per_nodule: dict[tuple, list[Roi]] = {}
  nodules = {}
  for nodule, roi in entries:
    key = (nodule.reader, nodule.index)
    per_nodule.setdefault(key, []).append(roi)
    nodules[key] = nodule
  marks = []
  for key, rois in per_nodule.items():
    nodule = nodules[key]
    where = (f'{readings.path} (readingSession {nodule.reader + 1}, nodule '
             f'{nodule.nodule_id})')
    mask = reader_mask(rois, series.shape, where)
    box = mask_box(mask)
    if box is None:
      counts.add('empty_marks')
      continue
    marks.append(Mark(nodule.reader, (series.series_uid,) + key, mask, box))
  return entries[0][1].z_text, marks
