"""The deterministic patient-level split of the formats that come unsplit.

LIDC-IDRI slices and the PHiSeg pickle come as one set; `split_patients`
assigns each patient (for the pickle: each series uid) to train, validation
or test by the rule `SPLIT_RULE` states. The salt and the fractions are part
of the prepared data: changing them changes every split.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable

from hpu_jax.data.lidc.errors import data_error
from hpu_jax.data.lidc.files import natural_key

SPLITS = ('train', 'validation', 'test')

# The patient-level split used by the formats that do not come split
# (LIDC-IDRI slices, the PHiSeg pickle). See `split_patients`.
SPLIT_FRACTIONS = {'train': 0.70, 'validation': 0.15, 'test': 0.15}
SPLIT_SALT = 'hpu_jax.lidc.split.v1'
SPLIT_RULE = (
    'patient-level split, deterministic: the unique patient ids are ordered '
    f'by sha256("{SPLIT_SALT}:" + patient id); validation and test each take '
    'max(1, round-half-up(0.15 * n)) patients of that order (validation '
    'first, then test from what is left at the end), train takes the rest '
    '(70 %). A patient\'s place in the order does not depend on the other '
    'patients. Needs at least 3 patients.'
)


def _round_half_up(x: float) -> int:
  return int(math.floor(x + 0.5))


def split_patients(patients: Iterable[str], where: str = 'the data set'
                   ) -> dict[str, list[str]]:
  """Deterministic patient-level train / validation / test split.

  See `SPLIT_RULE`. Returns each split's sorted patient ids.
  """
  unique = sorted(set(patients))
  n = len(unique)
  if n < 3:
    raise data_error(where, f'only {n} patient(s) found',
                     'at least 3 patients to split by patient into train, '
                     'validation and test')
  order = sorted(unique, key=lambda p: hashlib.sha256(
      f'{SPLIT_SALT}:{p}'.encode('utf-8')).hexdigest())
  n_val = max(1, _round_half_up(SPLIT_FRACTIONS['validation'] * n))
  n_test = max(1, _round_half_up(SPLIT_FRACTIONS['test'] * n))
  n_train = n - n_val - n_test
  return {
      'train': sorted(order[:n_train], key=natural_key),
      'validation': sorted(order[n_train:n_train + n_val], key=natural_key),
      'test': sorted(order[n_train + n_val:], key=natural_key),
  }
