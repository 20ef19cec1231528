"""Raw LIDC-IDRI (DICOM + XML) -> crops -> lidc_raw: small series written
with pydicom and XML files in the LIDC schema, with known answers."""

from __future__ import annotations

import glob
import importlib.util
import os

import numpy as np
import pytest
from PIL import Image

from hpu_jax.data import lidc
from hpu_jax.data.lidc import raw
from hpu_jax.data.lidc import raw_crops
from hpu_jax.data.lidc import raw_dicom
from hpu_jax.data.lidc import raw_masks
from hpu_jax.data.lidc import raw_xml

pydicom = pytest.importorskip('pydicom')

SPACING = 0.7          # mm: resampled by 0.7 / 0.5 = 1.4
SIZE = 64              # pixels: 44.8 mm, so 180 x 180 crops need padding
INTERCEPT = -1024.0
BACKGROUND_HU = -850.0   # -> 85 in the default window
NODULE_HU = 40.0
ZS = ('-100.00', '-101.25', '-102.50', '-103.75')
NS = 'http://www.nih.gov'
UID_ROOT = '1.2.826.0.1.3680043.8.498'


# ---------------------------------------------------------------------------
# Writers: DICOM files and LIDC XML
# ---------------------------------------------------------------------------


def write_dicom(path, hu, *, sop, series_uid, patient, z, spacing=SPACING,
                slice_location=None, slope=1.0, intercept=INTERCEPT,
                modality='CT'):
  """A CT image file: stored = (HU - intercept) / slope, int16."""
  from pydicom.dataset import Dataset, FileMetaDataset
  from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian
  meta = FileMetaDataset()
  meta.MediaStorageSOPClassUID = CTImageStorage
  meta.MediaStorageSOPInstanceUID = sop
  meta.TransferSyntaxUID = ExplicitVRLittleEndian
  ds = Dataset()
  ds.file_meta = meta
  ds.SOPClassUID = CTImageStorage
  ds.SOPInstanceUID = sop
  ds.PatientID = patient
  ds.Modality = modality
  ds.SeriesInstanceUID = series_uid
  ds.StudyInstanceUID = series_uid + '.0'
  ds.PixelSpacing = [spacing, spacing]
  ds.ImagePositionPatient = [-150.0, -160.0, float(z)]
  if slice_location is not False:
    ds.SliceLocation = float(z if slice_location is None else slice_location)
  ds.RescaleSlope = slope
  ds.RescaleIntercept = intercept
  ds.Rows, ds.Columns = hu.shape
  ds.BitsAllocated = ds.BitsStored = 16
  ds.HighBit = 15
  ds.PixelRepresentation = 1
  ds.SamplesPerPixel = 1
  ds.PhotometricInterpretation = 'MONOCHROME2'
  stored = np.round((np.asarray(hu, np.float64) - intercept) / slope)
  ds.PixelData = stored.astype(np.int16).tobytes()
  os.makedirs(os.path.dirname(path), exist_ok=True)
  ds.save_as(path, enforce_file_format=True)


def roi_xml(sop, z, points, inclusion=True):
  edges = ''.join(f'<edgeMap><xCoord>{x}</xCoord><yCoord>{y}</yCoord>'
                  '</edgeMap>' for x, y in points)
  return (f'<roi><imageZposition>{z} </imageZposition><imageSOP_UID>{sop}'
          f'</imageSOP_UID><inclusion>{"TRUE" if inclusion else "FALSE"}'
          f'</inclusion>{edges}</roi>')


def nodule_xml(nodule_id, rois):
  return (f'<unblindedReadNodule><noduleID>{nodule_id}</noduleID>'
          '<characteristics><subtlety>4</subtlety></characteristics>'
          + ''.join(rois) + '</unblindedReadNodule>')


def non_nodule_xml(sop, z, x, y):
  return (f'<nonNodule><nonNoduleID>nn</nonNoduleID><imageZposition>{z}'
          f'</imageZposition><imageSOP_UID>{sop}</imageSOP_UID><locus>'
          f'<xCoord>{x}</xCoord><yCoord>{y}</yCoord></locus></nonNodule>')


def write_xml(path, series_uid, sessions, root='LidcReadMessage', ns=NS):
  """sessions: one list of nodule / nonNodule XML strings per reader."""
  body = ''.join(
      '<readingSession><annotationVersion>3.12</annotationVersion>'
      f'<servicingRadiologistID>r{i}</servicingRadiologistID>'
      + ''.join(items) + '</readingSession>'
      for i, items in enumerate(sessions))
  xmlns = f' xmlns="{ns}"' if ns else ''
  text = (f'<?xml version="1.0" encoding="UTF-8"?>\n<{root}{xmlns}>'
          f'<ResponseHeader><SeriesInstanceUid>{series_uid}'
          f'</SeriesInstanceUid></ResponseHeader>{body}</{root}>')
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, 'w') as f:
    f.write(text)


def polygon(cx, cy, r, n=12, phase=0.0):
  """n integer vertices on a circle of radius r (pixels)."""
  t = np.linspace(0, 2 * np.pi, n, endpoint=False) + phase
  return [(int(round(cx + r * np.cos(a))), int(round(cy + r * np.sin(a))))
          for a in t]


def square(x0, y0, x1, y1):
  return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


class Series:
  """A CT series folder: DICOM files at ZS (nodules drawn at +40 HU)."""

  def __init__(self, root, patient, number, discs=(), zs=ZS, per_slice=None,
               **dicom_kw):
    self.patient = patient
    self.uid = f'{UID_ROOT}.{int(patient[-4:])}.{number}'
    self.folder = os.path.join(root, patient, f'01-01-2000-study{number}',
                               f'{number}.000000-NA-{number:05d}')
    self.sops = {}
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    for k, z in enumerate(zs):
      hu = np.full((SIZE, SIZE), BACKGROUND_HU)
      for cx, cy, r in discs:
        hu[(xx - cx) ** 2 + (yy - cy) ** 2 <= r * r] = NODULE_HU
      sop = f'{self.uid}.{k + 1}'
      self.sops[z] = sop
      kw = {**dicom_kw, **(per_slice or {}).get(k, {})}
      write_dicom(self.file(k), hu, sop=sop, series_uid=self.uid,
                  patient=patient, z=z, **kw)

  def file(self, k):
    return os.path.join(self.folder, f'1-{k + 1:03d}.dcm')

  def roi(self, z, points, inclusion=True):
    return roi_xml(self.sops[z], z, points, inclusion)

  def write_xml(self, sessions, **kw):
    path = os.path.join(self.folder, '069.xml')
    write_xml(path, self.uid, sessions, **kw)
    return path


# The nodule of patient 1, its four readers' outlines on ZS[1] (reader 0 also
# has a hole there) and ZS[2].
NODULE_1 = (30, 28, 7)
OUTLINES_1 = [polygon(30, 28, 7), polygon(31, 28, 6, phase=0.2),
              polygon(29, 27, 8, n=10), square(24, 22, 36, 34)]
HOLE_1 = square(28, 26, 32, 30)
FAR_A, FAR_B = (12, 12, 4), (52, 50, 4)


def make_raw_tree(root):
  """Three patients with known answers; returns facts for the tests."""
  # Patient 1: one nodule, 4 readers (+ a 5th session, dropped); a hole.
  s1 = Series(root, 'LIDC-IDRI-0001', 1, discs=[NODULE_1])
  sessions = []
  for k, outline in enumerate(OUTLINES_1):
    rois = [s1.roi(ZS[1], outline), s1.roi(ZS[2], outline)]
    if k == 0:
      rois.append(s1.roi(ZS[1], HOLE_1, inclusion=False))
    sessions.append([nodule_xml(f'N{k}', rois)])
  sessions.append([nodule_xml('N5', [s1.roi(ZS[1], polygon(30, 28, 5))])])
  xml1 = s1.write_xml(sessions)
  # Patient 2: two distant nodules on ZS[1]; a small nodule and a nonNodule
  # on ZS[2]; ZS[3] fails the SliceLocation rule (an outline on it).
  s2 = Series(root, 'LIDC-IDRI-0002', 1, discs=[FAR_A, FAR_B],
              per_slice={3: {'slice_location': 55.5}})
  a, b = polygon(*FAR_A), polygon(*FAR_B)
  s2.write_xml([
      [nodule_xml('A', [s2.roi(ZS[1], a)]),
       non_nodule_xml(s2.sops[ZS[2]], ZS[2], 40, 40)],
      [nodule_xml('A', [s2.roi(ZS[1], a), s2.roi(ZS[3], a)])],
      [nodule_xml('B', [s2.roi(ZS[1], b)])],
      [nodule_xml('small', [s2.roi(ZS[2], [(40, 20)])])],
  ])
  # Patient 3: two CT series with a nodule at the same z, and an X-ray.
  s3a = Series(root, 'LIDC-IDRI-0003', 2, discs=[(20, 40, 5)])
  s3b = Series(root, 'LIDC-IDRI-0003', 3, discs=[(40, 20, 5)])
  s3a.write_xml([[nodule_xml('a', [s3a.roi(ZS[0], polygon(20, 40, 5))])]])
  s3b.write_xml([[nodule_xml('b', [s3b.roi(ZS[0], polygon(40, 20, 5))])]] * 2)
  xray = Series(root, 'LIDC-IDRI-0003', 4, zs=('0',), modality='CR')
  xray.write_xml([], root='IdriReadMessage')
  return {'xml1': xml1, 's1': s1, 's2': s2, 's3a': s3a, 's3b': s3b}


def read_crop(crops_dir, patient, stem):
  """(image, masks [4]) of one written crop, found in whichever split."""
  found = glob.glob(os.path.join(crops_dir, '*', 'images', patient,
                                 f'{stem}.png'))
  assert len(found) == 1, (patient, stem, found)
  split_dir = os.path.dirname(os.path.dirname(os.path.dirname(found[0])))
  image = np.asarray(Image.open(found[0]))
  masks = np.stack([np.asarray(Image.open(os.path.join(
      split_dir, 'gt', patient, f'{stem}_l{k}.png'))) for k in range(4)])
  return image, masks // 255


def crop_stems(crops_dir, patient):
  return sorted(os.path.basename(p)[:-4] for p in glob.glob(os.path.join(
      crops_dir, '*', 'images', patient, '*.png')))


@pytest.fixture(scope='module')
def written(tmp_path_factory):
  """The tree of `make_raw_tree` made into crops once (1 process)."""
  root = tmp_path_factory.mktemp('raw')
  facts = make_raw_tree(str(root / 'LIDC-IDRI'))
  crops_dir = str(root / 'crops')
  counts = lidc.write_raw_crops(root / 'LIDC-IDRI', crops_dir, num_workers=1,
                                progress=False)
  return root, crops_dir, counts, facts


def marking(masks):
  return [int(m.any()) for m in masks]


# ---------------------------------------------------------------------------
# The rules, on the written crops
# ---------------------------------------------------------------------------


def test_counts_of_each_rule(written):
  _, _, counts, _ = written
  assert counts.patients == 3 and counts.patients_done_before == 0
  assert counts.counters == {
      'series': 4, 'dicom_files': 16, 'readings': 11, 'outlined_nodules': 10,
      'rois': 16, 'exclusion_rois': 1, 'abnormalities': 5, 'crops': 6,
      'slice_location_mismatch': 1, 'slice_location_missing': 0,
      'rois_on_filtered_slices': 1, 'small_nodules': 1, 'non_nodules': 1,
      'sessions_dropped': 1, 'dropped_nodules': 1, 'xray_series': 1,
      'series_without_readings': 0, 'empty_marks': 0}
  assert counts.bad_series == []
  text = counts.summary()
  assert 'patients: 3' in text and 'filtered out, by rule:' in text
  assert '1  chest X-ray series' in text


def test_four_readers_one_abnormality(written):
  """Overlapping boxes of 4 readers: one crop per slice, 4 masks."""
  _, crops_dir, _, _ = written
  assert crop_stems(crops_dir, 'LIDC-IDRI-0001') == [
      f'z-{ZS[1]}_c0', f'z-{ZS[2]}_c0']
  for z in ZS[1:3]:
    _, masks = read_crop(crops_dir, 'LIDC-IDRI-0001', f'z-{z}_c0')
    assert masks.shape == (4, 180, 180) and marking(masks) == [1, 1, 1, 1]


def test_two_distant_nodules_two_crops(written):
  """Numbered by their box: c0 the top-left one (readers 0, 1), c1 the
  other (reader 2)."""
  _, crops_dir, _, _ = written
  stems = crop_stems(crops_dir, 'LIDC-IDRI-0002')
  assert stems == [f'z-{ZS[1]}_c0', f'z-{ZS[1]}_c1']
  assert marking(read_crop(crops_dir, 'LIDC-IDRI-0002', stems[0])[1]) == [
      1, 1, 0, 0]
  assert marking(read_crop(crops_dir, 'LIDC-IDRI-0002', stems[1])[1]) == [
      0, 0, 1, 0]


def test_small_nodule_non_nodule_and_filtered_slice_give_nothing(written):
  """ZS[2] holds only a centre-only nodule and a nonNodule; ZS[3] fails the
  SliceLocation rule: no crops there, each counted."""
  _, crops_dir, counts, _ = written
  stems = crop_stems(crops_dir, 'LIDC-IDRI-0002')
  assert not any(ZS[2] in s or ZS[3] in s for s in stems)
  assert counts['small_nodules'] == 1 and counts['non_nodules'] == 1
  assert counts['slice_location_mismatch'] == 1
  assert counts['rois_on_filtered_slices'] == 1


def test_slice_location_rule_compares_absolute_values():
  assert raw_dicom.passes_slice_location_rule(-100.0, 100.0)
  assert raw_dicom.passes_slice_location_rule(100.004, -100.0)
  assert not raw_dicom.passes_slice_location_rule(-100.0, -101.25)


def test_exclusion_makes_a_hole(written):
  """Reader 0 outlined the same polygon on ZS[1] (with an exclusion) and
  ZS[2] (without): the difference is the hole, 5 x 5 original pixels
  (boundary included) = 12.25 mm^2, at the nodule's centre."""
  _, crops_dir, _, _ = written
  _, with_hole = read_crop(crops_dir, 'LIDC-IDRI-0001', f'z-{ZS[1]}_c0')
  _, without = read_crop(crops_dir, 'LIDC-IDRI-0001', f'z-{ZS[2]}_c0')
  np.testing.assert_array_equal(with_hole[1:], without[1:])
  hole = (without[0] == 1) & (with_hole[0] == 0)
  assert not ((with_hole[0] == 1) & (without[0] == 0)).any()
  assert hole.sum() * 0.25 == pytest.approx(25 * SPACING ** 2, rel=0.1)
  rows, cols = np.nonzero(hole)
  assert abs(rows.mean() - 89.5) <= 3 and abs(cols.mean() - 89.5) <= 3
  assert with_hole[0, 88:92, 88:92].sum() == 0   # the hole, not the ring
  assert without[0, 88:92, 88:92].all()


def area_tolerance_mm2(outline, spacing=SPACING):
  """Nearest resampling to 0.5 mm moves the region's edge by at most half an
  output pixel: |area error| <= its pixel outline's length x 0.25 mm."""
  filled = np.pad(raw_masks.fill_polygon(np.asarray(outline), (SIZE, SIZE)),
                  1).astype(int)
  edges = np.abs(np.diff(filled, axis=0)).sum() + np.abs(
      np.diff(filled, axis=1)).sum()
  return edges * spacing * 0.25


def test_mask_area_matches_the_polygon(written):
  """Each single-outline mask's area at 0.5 mm vs the polygon's with its
  boundary included (shoelace A + B/2 + 1 pixels of 0.7 x 0.7 mm), within
  `area_tolerance_mm2` (here 11 to 26 % of areas of 24 to 97 mm^2; the
  errors found are -5 to +3 %), and within 10 %."""
  _, crops_dir, _, _ = written
  cases = [('LIDC-IDRI-0001', f'z-{ZS[2]}_c0', k, OUTLINES_1[k])
           for k in range(4)]
  cases += [('LIDC-IDRI-0002', f'z-{ZS[1]}_c0', 0, polygon(*FAR_A)),
            ('LIDC-IDRI-0002', f'z-{ZS[1]}_c1', 2, polygon(*FAR_B))]
  for patient, stem, k, outline in cases:
    mask = read_crop(crops_dir, patient, stem)[1][k]
    expected = raw_masks.boundary_included_area(outline) * SPACING ** 2
    assert abs(mask.sum() * 0.25 - expected) <= area_tolerance_mm2(outline)
    assert mask.sum() * 0.25 == pytest.approx(expected, rel=0.1)


def test_fill_convention_is_exact_at_the_original_resolution():
  rng = np.random.default_rng(0)
  for n in (3, 4, 6, 12):
    for _ in range(5):
      pts = polygon(20 + rng.integers(-3, 3), 20, 4 + rng.integers(0, 12),
                    n=n, phase=float(rng.uniform(0, 1)))
      filled = raw_masks.fill_polygon(np.asarray(pts), (48, 48))
      assert filled.sum() == raw_masks.boundary_included_area(pts)
      for x, y in pts:   # the outline's own pixels are in
        assert filled[y, x]
  line = raw_masks.fill_polygon(np.array([(2, 2), (6, 2)]), (8, 8))
  assert line.sum() == 5 and line[2, 2:7].all()


def test_crops_are_centred_on_the_abnormality(written):
  """The centre of the union of the readers' masks is within 1 pixel
  (0.5 mm) of the crop's centre, 89.5."""
  _, crops_dir, _, _ = written
  for patient in ('LIDC-IDRI-0001', 'LIDC-IDRI-0002', 'LIDC-IDRI-0003'):
    for stem in crop_stems(crops_dir, patient):
      union = read_crop(crops_dir, patient, stem)[1].any(axis=0)
      rows, cols = np.nonzero(union)
      assert abs((rows.min() + rows.max()) / 2 - 89.5) <= 1, stem
      assert abs((cols.min() + cols.max()) / 2 - 89.5) <= 1, stem


def test_image_window_resampling_and_padding(written):
  """-850 HU -> 85, +40 HU -> 236 (window -1350..150); the 64 x 64 slice at
  0.7 mm is 90 x 90 pixels at 0.5 mm, the rest is padding (0)."""
  _, crops_dir, _, _ = written
  image, masks = read_crop(crops_dir, 'LIDC-IDRI-0002', f'z-{ZS[1]}_c0')
  inside = image > 0
  assert inside.any(axis=1).sum() == 90 and inside.any(axis=0).sum() == 90
  values = set(np.unique(image).tolist())
  assert {0, 85, 236} <= values and values <= set(range(0, 237))
  assert (image[88:92, 88:92] == 236).all()   # the nodule, at the centre
  assert image[masks[0] == 1].mean() > 200


def test_series_of_one_patient_do_not_collide(written):
  """Two CT series with a crop at the same z: c0 (series ...3.2, 1 reader)
  and c1 (series ...3.3, 2 readers); the X-ray series is skipped."""
  _, crops_dir, counts, _ = written
  stems = crop_stems(crops_dir, 'LIDC-IDRI-0003')
  assert stems == [f'z-{ZS[0]}_c0', f'z-{ZS[0]}_c1']
  assert marking(read_crop(crops_dir, 'LIDC-IDRI-0003', stems[0])[1]) == [
      1, 0, 0, 0]
  assert marking(read_crop(crops_dir, 'LIDC-IDRI-0003', stems[1])[1]) == [
      1, 1, 0, 0]
  assert counts['xray_series'] == 1


def test_crops_split_by_patient(written):
  _, crops_dir, counts, _ = written
  expected = lidc.split_patients(['LIDC-IDRI-0001', 'LIDC-IDRI-0002',
                                  'LIDC-IDRI-0003'])
  assert counts.split_patients == expected
  for split, patients in expected.items():
    for p in patients:
      assert os.path.isdir(os.path.join(crops_dir, raw.SPLIT_FOLDERS[split],
                                        'images', p))


# ---------------------------------------------------------------------------
# Units: XML, DICOM, resampling
# ---------------------------------------------------------------------------


def test_xml_readers_beyond_four_and_kinds(tmp_path):
  path = str(tmp_path / 'a.xml')
  roi = roi_xml('1.2.3', '-5.0', polygon(10, 10, 3))
  small = roi_xml('1.2.3', '-5.0', [(4, 4)])
  write_xml(path, '1.2', [[nodule_xml('n', [roi]), nodule_xml('s', [small])]]
            * 6, ns=None)   # no namespace: read too
  r = raw_xml.read_readings(path)
  assert (r.kind, r.sessions, r.sessions_dropped, r.dropped_nodules) == (
      'ct', 4, 2, 2)
  assert [n.reader for n in r.nodules] == [0, 1, 2, 3]
  assert r.small_nodules == 4 and r.nodules[0].rois[0].z_text == '-5.0'
  write_xml(path, '1.2', [], root='IdriReadMessage')
  assert raw_xml.read_readings(path).kind == 'xray'
  write_xml(path, '1.2', [])
  assert raw_xml.read_readings(path).kind == 'no_readings'


def test_rescale_slope_and_intercept(tmp_path):
  hu = np.arange(-1000, -488, 2, dtype=np.float64).reshape(16, 16)
  write_dicom(str(tmp_path / 's' / '1.dcm'), hu, sop='1.2.3.1',
              series_uid='1.2.3', patient='P', z=-10.0, slope=2.0,
              intercept=-1024.0)
  series = raw_dicom.read_series(str(tmp_path / 's'), ['1.dcm'])
  np.testing.assert_allclose(series.hu('1.2.3.1'), hu)
  assert series.spacing == (SPACING, SPACING)


def test_resampling_geometry():
  """Output pixel u samples the original at u * 0.5 / spacing (first pixel
  centres aligned); nearest takes the pixel whose square holds it."""
  ramp = np.tile(np.arange(10, dtype=np.float32), (10, 1))   # value = column
  out = raw_dicom.crop_linear(ramp, (0.7, 0.7), 0, -2, (3, 20), pad=-1)
  assert raw_dicom.resampled_length(10, 0.7) == 14
  np.testing.assert_allclose(out[0, :2], -1)      # left of the slice
  np.testing.assert_allclose(out[0, 2:15], np.arange(13) * 0.5 / 0.7,
                             atol=1e-5)
  np.testing.assert_allclose(out[0, 15], 9)       # past the last centre: edge
  np.testing.assert_allclose(out[0, 16:], -1)     # right of the slice
  mask = np.zeros((10, 10), np.uint8)
  mask[:, 3] = 1   # covers [2.5, 3.5) pixels = [1.75, 2.45) mm
  near = raw_dicom.crop_nearest(mask, (0.7, 0.7), 0, 0, (1, 14))[0]
  assert np.flatnonzero(near).tolist() == [4]   # 2.0 mm
  assert raw_dicom.window_to_uint8(np.array([-2000, -1350, -600, 150, 900]),
                                   (-1350, 150)).tolist() == [0, 0, 128, 255,
                                                              255]
  assert lidc.parse_hu_window('-1350, 150') == (-1350.0, 150.0)
  with pytest.raises(ValueError, match='min < max'):
    lidc.parse_hu_window('150,-1350')


def test_grouping_is_transitive_and_merges_a_readers_masks():
  shape = (20, 20)

  def mark(reader, r0, r1, c0, c1):
    m = np.zeros(shape, bool)
    m[r0:r1 + 1, c0:c1 + 1] = True
    return raw_crops.Mark(reader, (reader, r0), m, (r0, r1, c0, c1))

  marks = [mark(0, 0, 3, 0, 3), mark(1, 3, 6, 3, 6), mark(0, 6, 8, 6, 8),
           mark(2, 15, 18, 15, 18), mark(3, 0, 2, 4, 6)]   # touches: apart
  groups = raw_crops.group_marks(marks, shape)
  assert [g.box for g in groups] == [(0, 8, 0, 8), (0, 2, 4, 6),
                                     (15, 18, 15, 18)]
  assert groups[0].masks[0].sum() == 16 + 9 and groups[0].masks[1].sum() == 16
  assert not groups[0].masks[2:].any() and len(groups[0].keys) == 3


# ---------------------------------------------------------------------------
# Bad input: an error naming the file, or skipped and listed
# ---------------------------------------------------------------------------


def make_small_tree(root, n=3):
  """n patients, one series each: one nodule outlined by 2 readers."""
  out = []
  for i in range(1, n + 1):
    s = Series(root, f'LIDC-IDRI-{i:04d}', 1, discs=[(30, 30, 6)], zs=ZS[:2])
    outline = polygon(30, 30, 6)
    s.write_xml([[nodule_xml('n', [s.roi(ZS[0], outline)])]] * 2)
    out.append(s)
  return out


def break_input(case, s):
  """Breaks series `s`; returns (the path the error names, a phrase)."""
  if case == 'truncated_dicom':
    with open(s.file(1), 'rb') as f:
      data = f.read()
    with open(s.file(1), 'wb') as f:
      f.write(data[:-500])
    return s.file(1), 'truncated'
  if case == 'not_dicom':
    with open(s.file(0), 'wb') as f:
      f.write(b'not a DICOM file' * 10)
    return s.file(0), 'unreadable or truncated DICOM'
  if case == 'no_xml':
    os.remove(os.path.join(s.folder, '069.xml'))
    return s.folder, 'without an XML file'
  if case == 'unknown_sop':
    path = s.write_xml([[nodule_xml('n', [roi_xml('9.9.9', ZS[0],
                                                  polygon(30, 30, 6))])]])
    return path, '9.9.9'
  if case == 'other_schema':
    path = s.write_xml([], root='Annotations', ns='http://example.com/other')
    return path, 'another schema'
  if case == 'mixed_spacing':
    write_dicom(s.file(1), np.full((SIZE, SIZE), BACKGROUND_HU),
                sop=s.sops[ZS[1]], series_uid=s.uid, patient=s.patient,
                z=ZS[1], spacing=0.8)
    return s.file(1), 'PixelSpacing [0.8, 0.8]'
  raise ValueError(case)


BAD_CASES = ('truncated_dicom', 'not_dicom', 'no_xml', 'unknown_sop',
             'other_schema', 'mixed_spacing')


@pytest.mark.parametrize('case', BAD_CASES)
def test_bad_input_names_the_file_or_is_skipped_and_listed(tmp_path, case):
  root = tmp_path / 'LIDC-IDRI'
  series = make_small_tree(str(root))
  where, phrase = break_input(case, series[1])
  with pytest.raises(lidc.LidcDataError) as error:
    lidc.write_raw_crops(root, tmp_path / 'crops', num_workers=1,
                         progress=False)
  assert where in str(error.value) and phrase in str(error.value)
  assert 'expected' in str(error.value)
  counts = lidc.write_raw_crops(root, tmp_path / 'crops2', num_workers=1,
                                progress=False, skip_bad_examples=True)
  assert [b.where for b in counts.bad_series] == [series[1].folder]
  assert where in counts.bad_series[0].reason
  assert counts['crops'] == 2 and counts.patients == 3   # the others kept
  text = counts.summary()
  assert 'bad series skipped: 1' in text and where in text


def test_skipped_series_listed_in_the_prepared_report(tmp_path):
  root = tmp_path / 'LIDC-IDRI'
  series = make_small_tree(str(root))
  break_input('no_xml', series[0])
  _, report = lidc.prepare_raw(root, tmp_path / 'data', num_workers=1,
                               skip_bad_examples=True, progress=False)
  assert [b.id for b in report.bad_examples] == [series[0].folder]
  assert 'without an XML file' in report.bad_examples[0].reason
  assert report.num_examples == 2
  assert report.details['raw_counts']['crops'] == 2


def test_crops_dir_with_other_content_or_settings_is_refused(tmp_path):
  root = tmp_path / 'LIDC-IDRI'
  make_small_tree(str(root))
  other = tmp_path / 'other'
  (other / 'train').mkdir(parents=True)
  with pytest.raises(lidc.LidcDataError, match='not empty'):
    lidc.write_raw_crops(root, other, num_workers=1, progress=False)
  lidc.write_raw_crops(root, tmp_path / 'crops', num_workers=1,
                       progress=False)
  with pytest.raises(lidc.LidcDataError, match='another HU window'):
    lidc.write_raw_crops(root, tmp_path / 'crops', hu_window=(-1000, 400),
                         num_workers=1, progress=False)


# ---------------------------------------------------------------------------
# End to end
# ---------------------------------------------------------------------------


def all_files(*folders):
  return {os.path.join(d, f): os.stat(os.path.join(d, f)).st_mtime_ns
          for folder in folders for d, _, fs in os.walk(folder) for f in fs}


def same_examples(a, b):
  assert len(a) == len(b)
  for x, y in zip(a, b):
    assert x['id'] == y['id'] and x['patient'] == y['patient']
    np.testing.assert_array_equal(x['image'], y['image'])
    np.testing.assert_array_equal(x['masks'], y['masks'])


def test_end_to_end_load_crops_format_and_rerun(tmp_path):
  root = tmp_path / 'LIDC-IDRI'
  make_raw_tree(str(root))
  data = tmp_path / 'tfds'
  counts, report = lidc.prepare_raw(root, data, num_workers=1, progress=False)
  crops_dir = data / 'lidc_raw_crops'   # the default
  assert report.format == 'lidc_raw' and not report.already_prepared
  assert report.num_examples == counts['crops'] == 6
  assert report.num_patients == 3 and len(report.split_sizes) == 3
  assert report.details['crops_dir'] == str(crops_dir)
  assert report.details['raw_counts']['small_nodules'] == 1
  crops_report = lidc.prepare('lidc_crops', crops_dir, tmp_path / 'tfds2')
  assert crops_report.split_sizes == report.split_sizes
  for split in report.split_sizes:
    src = lidc.load_source('lidc_raw', data, split)
    ex = src[0]
    assert ex['image'].shape == (180, 180) and ex['image'].dtype == np.uint8
    assert ex['masks'].shape == (4, 180, 180) and ex['masks'].max() == 1
    same_examples(src, lidc.load_source('lidc_crops', tmp_path / 'tfds2',
                                        split))
  before = all_files(crops_dir, data / 'lidc_raw')
  counts2, report2 = lidc.prepare_raw(root, data, num_workers=1,
                                      progress=False)
  assert report2.already_prepared
  assert (counts2.patients_done_before, counts2.patients_processed) == (3, 0)
  assert counts2.counters == counts.counters
  assert all_files(crops_dir, data / 'lidc_raw') == before


SCRIPT_FLAGS = ('format', 'manual_dir', 'data_dir', 'skip_bad_examples',
                'crops_dir', 'hu_window', 'num_workers')


@pytest.fixture
def prepare_script():
  """scripts/prepare_data.py as a module. Its absl flags live in the global
  FLAGS, so any earlier definitions (another test's copy) are removed first
  and this copy's afterwards."""
  from absl import flags

  def forget():
    for name in SCRIPT_FLAGS:
      if name in flags.FLAGS:
        delattr(flags.FLAGS, name)

  forget()
  spec = importlib.util.spec_from_file_location(
      'prepare_data', os.path.join(os.path.dirname(__file__), '..', 'scripts',
                                   'prepare_data.py'))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  yield module
  forget()


def test_prepare_as_training_does_and_the_script(tmp_path, capsys,
                                                 prepare_script):
  """`lidc.prepare('lidc_raw', ...)` (what --config.data.name=lidc_raw runs)
  and the script with 2 worker processes make the same data set."""
  root = tmp_path / 'LIDC-IDRI'
  make_raw_tree(str(root))
  lidc.prepare('lidc_raw', root, tmp_path / 'a')
  assert os.path.isdir(tmp_path / 'a' / 'lidc_raw_crops' / 'val')
  module = prepare_script
  rc = module.main(['--format', 'lidc_raw', '--manual_dir', str(root),
                    '--data_dir', str(tmp_path / 'b'), '--crops_dir',
                    str(tmp_path / 'crops'), '--num_workers', '2',
                    '--hu_window=-1350,150'])
  out = capsys.readouterr().out
  assert rc == 0
  assert 'patients: 3 (3 read now, 0 done before)' in out
  assert '6  crops' in out and '1  small nodules' in out
  assert 'examples: 6   patients: 3' in out
  for split in ('train', 'validation', 'test'):
    same_examples(lidc.load_source('lidc_raw', tmp_path / 'a', split),
                  lidc.load_source('lidc_raw', tmp_path / 'b', split))
  from absl import app
  with pytest.raises(app.UsageError, match='only for --format lidc_raw'):
    module.main(['--format', 'lidc_crops', '--manual_dir', str(root),
                 '--data_dir', str(tmp_path / 'c'), '--num_workers', '2'])
  with pytest.raises(app.UsageError, match='hu_window'):
    module.main(['--format', 'lidc_raw', '--manual_dir', str(root),
                 '--data_dir', str(tmp_path / 'c'), '--hu_window=100,-100'])


def test_missing_data_message_names_tcia():
  msg = lidc.missing_data_message('lidc_raw')
  assert '--config.data.dir=/path/to/LIDC-IDRI' in msg
  assert 'The Cancer Imaging Archive' in msg and 'LIDC-IDRI' in msg
  assert 'DICOM + XML' in msg
  assert all(other not in msg for other in lidc.FORMATS if other != 'lidc_raw')
