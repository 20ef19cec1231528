"""`prepare_raw`: the `lidc_raw` format's two steps with their own settings.

`lidc.prepare('lidc_raw', manual_dir, data_dir)` does both steps with the
defaults (crops in `<data_dir>/lidc_raw_crops`, the lung window, all cores).
`prepare_raw` takes the crops folder, the HU window and the number of worker
processes, reports each step (`RawCounts`, then `PrepareReport`), and is
what `scripts/prepare_data.py --format lidc_raw` runs. A re-run on complete
output does nothing: the crops step skips the patients already done and the
TFDS step is skipped when the data set is prepared.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path


from hpu_jax.data.lidc.prepared import builder, download_and_prepare, is_prepared
from hpu_jax.data.lidc.raw import LidcRaw, default_crops_dir, write_raw_crops
from hpu_jax.data.lidc.raw_dicom import DEFAULT_HU_WINDOW
from hpu_jax.data.lidc.raw_report import RawCounts
from hpu_jax.data.lidc.report import PrepareReport


def prepare_raw(manual_dir: str | os.PathLike[str],
                data_dir: str | os.PathLike[str], *,
                crops_dir: str | os.PathLike[str] | None = None,
                hu_window: tuple[float, float] = DEFAULT_HU_WINDOW,
                num_workers: int | None = None,
                skip_bad_examples: bool = False,
                progress: bool = True,
                echo: Callable[[str], None] | None = None
                ) -> tuple[RawCounts, PrepareReport]:
  """Writes the crops from raw LIDC-IDRI, then prepares `lidc_raw` from them.

  `crops_dir` defaults to `<data_dir>/lidc_raw_crops`. `echo` (e.g. print)
  gets the crops step's summary before the TFDS step starts. Raises
  `LidcDataError` naming the file on bad input, unless `skip_bad_examples`.
  """
  crops_dir = (Path(crops_dir) if crops_dir is not None
               else default_crops_dir(data_dir))
  counts = write_raw_crops(manual_dir, crops_dir, hu_window, num_workers,
                           skip_bad_examples, progress)
  if echo is not None:
    echo(counts.summary())
  b = LidcRaw(data_dir=os.fspath(data_dir), manual_path=manual_dir,
              skip_bad_examples=skip_bad_examples, crops_dir=crops_dir,
              hu_window=hu_window, num_workers=num_workers, progress=False)
  already = is_prepared(b)
  start = time.perf_counter()
  if not already:
    download_and_prepare(b, manual_dir)
  stored = builder(LidcRaw.FORMAT, None, data_dir)
  report = PrepareReport.from_builder(stored, seconds=time.perf_counter()
                                      - start, already_prepared=already)
  return counts, report
