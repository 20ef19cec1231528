"""Raw LIDC-IDRI (TCIA's DICOM + XML) -> the HPU-Net's crops -> `lidc_raw`.

Two steps. The crops step, `write_raw_crops(manual_dir, crops_dir)`, finds
the patients in TCIA's folder tree, splits them by patient
(`split.split_patients`, the rule of the formats that come unsplit) and
writes each patient's 180 x 180 crops at 0.5 mm, centred on the
abnormalities, with one mask per reader, in DeepMind's crops layout:

    <crops_dir>/<train|val|test>/images/<patient>/z-<pos>_c<n>.png
    <crops_dir>/<train|val|test>/gt/<patient>/z-<pos>_c<n>_l<k>.png

The TFDS step, the builder `LidcRaw` (format 'lidc_raw'), is `LidcCrops` read
from that folder, so the prepared examples equal what `lidc_crops` prepares
from it. Its `plan` runs the crops step first, so `lidc.prepare('lidc_raw',
'/path/to/LIDC-IDRI', data_dir)` (and `--config.data.name=lidc_raw`) does
both. The crops folder defaults to `<data_dir>/lidc_raw_crops`.

The tree: a series folder is a folder holding *.dcm or *.xml files; its
patient is the folder two levels up (`<patient>/<study>/<series>/`, as TCIA's
NBIA Data Retriever writes it, at any depth, e.g. under
`manifest-*/LIDC-IDRI/`). Per patient: raw_patient.py. Patients run in
parallel in `num_workers` processes (default: all cores; 1 runs them in this
process), with a progress bar. The workers are started by "spawn", not
"fork" (a process that imported JAX is multithreaded, and forking it can
deadlock), so a script calling this needs the usual
`if __name__ == '__main__':` guard; scripts/prepare_data.py has it.

Re-runs. `<crops_dir>/lidc_raw_crops.json` records the settings (HU window,
each patient's split) and a re-run with other settings stops with an error
(delete the folder to make the crops again). A patient is done when its
marker `<crops_dir>/.done/<patient>.json` exists: written last, atomically
(write then rename), holding the patient's counts. A re-run skips the done
patients and reports the same totals, so a complete folder costs one walk of
the tree. A non-empty folder without the settings file is refused (it may
hold other crops).
"""

from __future__ import annotations

import concurrent.futures
import json
import multiprocessing
import os
import time
from collections.abc import Iterator
from pathlib import Path

from hpu_jax.data.lidc.crops import LidcCrops, plan_crops
from hpu_jax.data.lidc.errors import data_error
from hpu_jax.data.lidc.files import natural_key
from hpu_jax.data.lidc.plan import BadExample, SplitPlan
from hpu_jax.data.lidc.raw_dicom import DEFAULT_HU_WINDOW
from hpu_jax.data.lidc.raw_patient import PatientJob, process_patient
from hpu_jax.data.lidc.raw_report import RawCounts
from hpu_jax.data.lidc.split import SPLIT_RULE, split_patients

CROPS_FOLDER = 'lidc_raw_crops'          # default: <data_dir>/lidc_raw_crops
SETTINGS_FILE = 'lidc_raw_crops.json'
DONE_FOLDER = '.done'
SPLIT_FOLDERS = {'train': 'train', 'validation': 'val', 'test': 'test'}
RAW_LAYOUT = (
    "TCIA's LIDC-IDRI collection as downloaded: LIDC-IDRI-XXXX/<study>/"
    '<series>/ folders, each with the DICOM files of one series (*.dcm) and '
    'its XML file of readings (*.xml), at any depth (e.g. under '
    'manifest-*/LIDC-IDRI/)')


def default_crops_dir(data_dir: str | os.PathLike[str]) -> Path:
  return Path(data_dir) / CROPS_FOLDER


def find_patients(manual_dir: Path) -> dict[str, list[str]]:
  """patient -> their series folders, from TCIA's folder tree."""
  manual_dir = Path(manual_dir)
  patients: dict[str, list[str]] = {}
  patient_dirs: dict[str, Path] = {}
  for folder, dirs, files in os.walk(manual_dir):
    dirs.sort(key=natural_key)
    if not any(f.lower().endswith(('.dcm', '.xml')) for f in files):
      continue
    series = Path(folder)
    parts = series.relative_to(manual_dir).parts
    if len(parts) < 3:
      raise data_error(folder, 'DICOM or XML files not in a <patient>/<study>'
                       '/<series>/ folder', RAW_LAYOUT)
    patient_dir = series.parent.parent
    patient = patient_dir.name
    if patient_dirs.setdefault(patient, patient_dir) != patient_dir:
      raise data_error(str(patient_dir), f'patient {patient} also in '
                       f'{patient_dirs[patient]}', 'each patient once')
    patients.setdefault(patient, []).append(folder)
  if not patients:
    raise data_error(str(manual_dir), 'no DICOM (*.dcm) or XML files found',
                     RAW_LAYOUT)
  return {p: patients[p] for p in sorted(patients, key=natural_key)}


def _write_json(path: Path, data) -> None:
  """Atomically: a reader sees the old file or the whole new one."""
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(f'{path.name}.tmp{os.getpid()}')
  tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
  os.replace(tmp, path)


def _check_settings(crops_dir: Path, settings: dict) -> None:
  """Records the settings, or checks them against the recorded ones."""
  path = crops_dir / SETTINGS_FILE
  if path.exists():
    recorded = json.loads(path.read_text())
    for key in ('hu_window', 'split_of'):
      if recorded.get(key) != settings[key]:
        what = ('HU window' if key == 'hu_window' else
                'patients (or their split)')
        shown = (f'{recorded.get(key)} (this run: {settings[key]})'
                 if key == 'hu_window' else 'other patients than this run')
        raise data_error(str(path), f'crops made with another {what}: '
                         f'{shown}', 'the same settings, or a new crops '
                         'folder (delete this one to make the crops again)')
    return
  if crops_dir.exists() and any(crops_dir.iterdir()):
    raise data_error(str(crops_dir), f'not empty, and no {SETTINGS_FILE} in '
                     'it (not made from raw LIDC-IDRI here)',
                     'an empty or new folder for the crops')
  _write_json(path, settings)


def _run(jobs: list[PatientJob], num_workers: int, progress: bool
         ) -> Iterator[tuple[PatientJob, dict]]:
  """(job, its counts) as the patients finish; the first error stops all."""
  from tqdm import tqdm  # pylint: disable=g-import-not-at-top
  bar = tqdm(total=len(jobs), unit='patient', desc='LIDC-IDRI -> crops',
             disable=not progress or not jobs)
  with bar:
    if num_workers <= 1 or len(jobs) <= 1:
      for job in jobs:
        result = process_patient(job)
        bar.update()
        yield job, result
      return
    # spawn: the workers start clean, whatever threads this process holds.
    pool = concurrent.futures.ProcessPoolExecutor(
        max_workers=min(num_workers, len(jobs)),
        mp_context=multiprocessing.get_context('spawn'))
    try:
      futures = {pool.submit(process_patient, job): job for job in jobs}
      for future in concurrent.futures.as_completed(futures):
        result = future.result()
        bar.update()
        yield futures[future], result
    except concurrent.futures.process.BrokenProcessPool as exc:
      raise RuntimeError(
          'a worker process died or could not start. Worker processes are '
          'started by "spawn": they import the calling script again, so a '
          'script calling this must do so under `if __name__ == '
          '"__main__":` (or pass num_workers=1 to run in this process)'
      ) from exc
    finally:
      pool.shutdown(wait=True, cancel_futures=True)


def write_raw_crops(manual_dir: str | os.PathLike[str],
                    crops_dir: str | os.PathLike[str],
                    hu_window: tuple[float, float] = DEFAULT_HU_WINDOW,
                    num_workers: int | None = None,
                    skip_bad_examples: bool = False,
                    progress: bool = True) -> RawCounts:
  """The crops step (module docstring); returns its counts.

  Raises `LidcDataError` naming the file on bad input, unless
  `skip_bad_examples`: then the bad series is skipped and listed.
  """
  start = time.perf_counter()
  manual_dir, crops_dir = Path(manual_dir), Path(crops_dir)
  if not manual_dir.is_dir():
    raise data_error(str(manual_dir), 'not a folder', RAW_LAYOUT)
  lo, hi = (float(v) for v in hu_window)
  if not lo < hi:
    raise ValueError(f'hu_window={tuple(hu_window)}: expected (min, max) HU '
                     'with min < max')
  patients = find_patients(manual_dir)
  splits = split_patients(patients, where=str(manual_dir))
  split_of = {p: s for s, ps in splits.items() for p in ps}
  _check_settings(crops_dir, {'hu_window': [lo, hi], 'split_of': split_of,
                              'split_rule': SPLIT_RULE})
  counts = RawCounts(source=str(manual_dir), crops_dir=str(crops_dir),
                     split_patients=splits)
  jobs = []
  for patient, series_dirs in patients.items():
    marker = crops_dir / DONE_FOLDER / f'{patient}.json'
    if marker.exists():
      counts += _patient_counts(json.loads(marker.read_text()))
      counts.patients_done_before += 1
      continue
    jobs.append(PatientJob(
        patient, tuple(series_dirs),
        str(crops_dir / SPLIT_FOLDERS[split_of[patient]]), (lo, hi),
        bool(skip_bad_examples)))
  workers = num_workers or os.cpu_count() or 1
  for job, result in _run(jobs, workers, progress):
    _write_json(crops_dir / DONE_FOLDER / f'{job.patient}.json', result)
    counts += _patient_counts(result)
  counts.seconds = time.perf_counter() - start
  return counts


def _patient_counts(data: dict) -> RawCounts:
  counts = RawCounts.from_json(data)
  counts.patients = 1
  return counts


class LidcRaw(LidcCrops, skip_registration=True):
  """Raw LIDC-IDRI: DICOM + XML -> 180 x 180 crops at 0.5 mm, 4 readers."""

  FORMAT = 'lidc_raw'
  LAYOUT = RAW_LAYOUT
  DESCRIPTION = (
      'LIDC-IDRI CT slices resampled to 0.5 mm in-plane and cut into 180 x '
      '180 crops centred on each abnormality at least one radiologist '
      'outlined, with the masks of the 4 readers (0/1), made from TCIA\'s '
      'DICOM + XML by the HPU-Net README\'s rules. Split by patient. Train on '
      'random 128 x 128 crops, evaluate on the centre crop [26:-26, 26:-26].')
  HOMEPAGE = 'https://www.cancerimagingarchive.net/collection/lidc-idri/'
  ORIGIN = (
      "The Cancer Imaging Archive's LIDC-IDRI collection (DICOM + XML: each "
      "CT series' DICOM files with the XML file of its readings, as the NBIA "
      'Data Retriever downloads them, LIDC-IDRI-XXXX/<study>/<series>/)')
  EXAMPLE_DIR = '/path/to/LIDC-IDRI'
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      'Download the LIDC-IDRI collection from The Cancer Imaging Archive '
      '(images and XML annotations) and give its folder. Layout: '
      + RAW_LAYOUT)

  def __init__(self, *, crops_dir: str | os.PathLike[str] | None = None,
               hu_window: tuple[float, float] = DEFAULT_HU_WINDOW,
               num_workers: int | None = None, progress: bool = True,
               **kwargs):
    super().__init__(**kwargs)
    self._crops_dir = (Path(crops_dir) if crops_dir is not None else
                       default_crops_dir(Path(os.fspath(self.data_dir))
                                         .parents[1]))
    self._hu_window = tuple(float(v) for v in hu_window)
    self._num_workers = num_workers
    self._progress = progress

  def plan(self, path: Path) -> SplitPlan:
    counts = write_raw_crops(path, self._crops_dir, self._hu_window,
                             self._num_workers, self._skip_bad_examples,
                             self._progress)
    self._raw_counts = counts
    if not any((self._crops_dir / f).is_dir() for f in SPLIT_FOLDERS.values()):
      raise data_error(str(path), f'no crops made from {counts.patients} '
                       f'patient(s): {counts["outlined_nodules"]} outlined '
                       f'nodules, {len(counts.bad_series)} bad series skipped',
                       'CT series whose XML outlines nodules (>= 3 mm)')
    plan = plan_crops(self._crops_dir)
    plan.source = str(path)
    plan.details.update({
        'crops_dir': str(self._crops_dir),
        'hu_window': list(self._hu_window),
        'split_rule': SPLIT_RULE,
        'raw_counts': counts.metadata(),
    })
    return plan

  def _split_generators(self, dl_manager):
    generators = super()._split_generators(dl_manager)
    split_of = {p: s for s, ps in self._raw_counts.split_patients.items()
                for p in ps}
    self._bad.extend(BadExample(b.where, split_of.get(b.patient, ''),
                                b.reason)
                     for b in self._raw_counts.bad_series)
    self._update_metadata()
    return generators
