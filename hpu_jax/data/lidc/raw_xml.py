"""Reading one LIDC-IDRI XML file: the radiologists' readings of a series.

TCIA ships, beside each series' DICOM files, an XML file of readings in the
LIDC schema (namespace http://www.nih.gov). `read_readings(path)` returns
`Readings`; the rules it applies:

- The kind of file. Root `LidcReadMessage` with at least one
  `readingSession`: 'ct', the readings of a CT series. `LidcReadMessage`
  without any `readingSession`: 'no_readings'. Root `IdriReadMessage`: 'xray',
  the readings of a chest radiograph. The last two are skipped and counted by
  the caller. Any other root, or another namespace: `LidcDataError` (an XML
  of another schema). A root without a namespace is read too.
- Readers. The first four `readingSession`s in file order are readers 0..3
  (the `_l0` .. `_l3` of the crops layout). Any further session is dropped
  and counted (`sessions_dropped`, and its outlined nodules in
  `dropped_nodules`). Reader k is the k-th session of that file, not one
  radiologist across series: LIDC does not identify readers across scans.
- Nodules. An `unblindedReadNodule` with edgeMap outlines (nodules >= 3 mm)
  is kept. One whose every `roi` has a single edgeMap point is a small nodule
  (< 3 mm, given by its centre only): dropped, counted (`small_nodules`).
  `nonNodule` marks are dropped, counted (`non_nodules`).
- rois. Each keeps its `imageSOP_UID` (which slice), its `imageZposition` as
  written (stripped of blanks; it names the crop file), `inclusion` (TRUE: a
  region of the nodule; FALSE: an exclusion, a region cut out of it; a roi
  without it is an inclusion) and its edgeMap points as (x, y) = (column,
  row) pixel indices of the slice.

Parsing is the standard library's `xml.etree`. Every problem raises
`LidcDataError` naming the file, the reading session and the nodule.
"""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET

import numpy as np

from hpu_jax.data.lidc.errors import data_error

LIDC_NAMESPACE = 'http://www.nih.gov'
MAX_READERS = 4
CT_ROOT = 'LidcReadMessage'
XRAY_ROOT = 'IdriReadMessage'
XML_EXPECTED = (
    f'an LIDC-IDRI XML file of readings: root {CT_ROOT} (CT) or {XRAY_ROOT} '
    f'(chest X-ray) in the namespace {LIDC_NAMESPACE}')


@dataclasses.dataclass(frozen=True)
class Roi:
  """One outline of a nodule on one slice."""
  sop_uid: str
  z_text: str          # imageZposition as written in the XML
  inclusion: bool      # False: an exclusion (a hole in the nodule)
  points: np.ndarray   # int [K, 2]: (x, y) = (column, row)


@dataclasses.dataclass(frozen=True)
class Nodule:
  """One reader's outlined nodule (>= 3 mm): its rois, slice by slice."""
  reader: int          # 0..3: the reading session's place in the file
  index: int           # its place among that reader's outlined nodules
  nodule_id: str
  rois: tuple[Roi, ...]


@dataclasses.dataclass
class Readings:
  """What one XML file holds, after the rules in the module docstring."""
  path: str
  kind: str                    # 'ct', 'no_readings' or 'xray'
  series_uid: str | None       # ResponseHeader/SeriesInstanceUid, if given
  sessions: int = 0            # reading sessions kept (at most 4)
  sessions_dropped: int = 0    # sessions after the fourth
  dropped_nodules: int = 0     # their outlined nodules
  nodules: list[Nodule] = dataclasses.field(default_factory=list)
  small_nodules: int = 0       # centre-only nodules of the readers kept
  non_nodules: int = 0         # nonNodule marks of the readers kept


def _split_tag(tag: str) -> tuple[str, str]:
  """'{ns}name' -> (ns, name); 'name' -> ('', name)."""
  if tag.startswith('{'):
    ns, _, name = tag[1:].partition('}')
    return ns, name
  return '', tag


class _Names:
  """Qualified tag names in the file's namespace (or none)."""

  def __init__(self, ns: str):
    self._prefix = f'{{{ns}}}' if ns else ''

  def __call__(self, name: str) -> str:
    return self._prefix + name


def read_readings(path: str) -> Readings:
  """Parses the XML file at `path` (see the module docstring)."""
  try:
    root = ET.parse(path).getroot()
  except ET.ParseError as exc:
    raise data_error(path, f'not well-formed XML ({exc})',
                     XML_EXPECTED) from exc
  except OSError as exc:
    raise data_error(path, f'unreadable ({exc})', XML_EXPECTED) from exc
  ns, name = _split_tag(root.tag)
  if ns not in ('', LIDC_NAMESPACE) or name not in (CT_ROOT, XRAY_ROOT):
    shown = f'{name} in namespace {ns}' if ns else f'{name} (no namespace)'
    raise data_error(path, f'an XML of another schema: root element {shown}',
                     XML_EXPECTED)
  q = _Names(ns)
  series_uid = _child_text(root, (q('ResponseHeader'), q('SeriesInstanceUid')))
  if name == XRAY_ROOT:
    return Readings(path, 'xray', series_uid)
  sessions = root.findall(q('readingSession'))
  if not sessions:
    return Readings(path, 'no_readings', series_uid)
  readings = Readings(path, 'ct', series_uid)
  readings.sessions = min(len(sessions), MAX_READERS)
  for s, session in enumerate(sessions):
    outlined, small, non = _read_session(session, s, path, q)
    if s >= MAX_READERS:
      readings.sessions_dropped += 1
      readings.dropped_nodules += len(outlined)
      continue
    readings.nodules.extend(outlined)
    readings.small_nodules += small
    readings.non_nodules += non
  return readings


def _child_text(element, path: tuple[str, ...]) -> str | None:
  for tag in path:
    element = element.find(tag)
    if element is None:
      return None
  return (element.text or '').strip() or None


def _read_session(session, s: int, path: str, q: _Names
                  ) -> tuple[list[Nodule], int, int]:
  """(outlined nodules, small nodules, nonNodule marks) of session `s`."""
  outlined: list[Nodule] = []
  small = 0
  for n, element in enumerate(session.findall(q('unblindedReadNodule'))):
    nodule_id = _child_text(element, (q('noduleID'),)) or f'#{n + 1}'
    where = f'{path} (readingSession {s + 1}, nodule {nodule_id})'
    rois = tuple(_read_roi(r, where, q) for r in element.findall(q('roi')))
    if not rois:
      raise data_error(where, 'a nodule without any roi',
                       'each unblindedReadNodule to have at least one roi')
    if all(len(r.points) == 1 for r in rois):
      small += 1
      continue
    outlined.append(Nodule(reader=s, index=len(outlined),
                           nodule_id=nodule_id, rois=rois))
  non = len(session.findall(q('nonNodule')))
  return outlined, small, non


def _read_roi(element, where: str, q: _Names) -> Roi:
  sop_uid = _child_text(element, (q('imageSOP_UID'),))
  z_text = _child_text(element, (q('imageZposition'),))
  if sop_uid is None or z_text is None:
    raise data_error(where, 'a roi without imageSOP_UID or imageZposition',
                     'both in every roi')
  try:
    float(z_text)
  except ValueError:
    raise data_error(where, f'imageZposition {z_text!r} is not a number',
                     'a decimal number (mm)') from None
  inclusion_text = (_child_text(element, (q('inclusion'),)) or 'TRUE').upper()
  if inclusion_text not in ('TRUE', 'FALSE'):
    raise data_error(where, f'inclusion {inclusion_text!r}',
                     'inclusion TRUE or FALSE')
  points = []
  for edge in element.findall(q('edgeMap')):
    x = _child_text(edge, (q('xCoord'),))
    y = _child_text(edge, (q('yCoord'),))
    try:
      points.append((int(x), int(y)))
    except (TypeError, ValueError):
      raise data_error(where, f'edgeMap point ({x}, {y}) on slice {sop_uid}',
                       'integer xCoord and yCoord (pixel indices)') from None
  if not points:
    raise data_error(where, f'a roi without edgeMap points on slice {sop_uid}',
                     'at least one edgeMap point per roi')
  return Roi(sop_uid=sop_uid, z_text=z_text,
             inclusion=inclusion_text == 'TRUE',
             points=np.asarray(points, np.int64).reshape(-1, 2))
