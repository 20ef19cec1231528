"""The errors of the LIDC data code, and how they are worded.

`LidcDataError` is the one error raised for bad input; its message always
names the file (or archive member, or pickle entry) and says what was
expected (`data_error` words it). `LidcNotPreparedError`: `load_source` was
called before `prepare`. `find_data_error` digs a `LidcDataError` out of the
exception TFDS may wrap it in.
"""

from __future__ import annotations


class LidcDataError(ValueError):
  """Bad LIDC input. The message names the file and what was expected."""


def skippable(exc: LidcDataError) -> LidcDataError:
  """Marks `exc` as the fault of one example (or series), which
  `skip_bad_examples` would skip; raise the result."""
  exc.skippable = True
  return exc


def is_skippable(exc: BaseException) -> bool:
  """Whether skipping bad examples would get past `exc` (see `skippable`)."""
  return bool(getattr(exc, 'skippable', False))


class LidcNotPreparedError(FileNotFoundError):
  """`load_source` was called before the data set was prepared."""


def data_error(where: str, problem: str, expected: str) -> LidcDataError:
  """`LidcDataError` worded `<where>: <problem>; expected <expected>`."""
  return LidcDataError(f'{where}: {problem}; expected {expected}')


def find_data_error(exc: BaseException) -> LidcDataError | None:
  """The `LidcDataError` in `exc`'s cause / context chain, if any.

  TFDS may wrap an exception raised while generating examples; `prepare` uses
  this to surface the original file name and reason.
  """
  seen = set()
  todo = [exc]
  while todo:
    e = todo.pop()
    if e is None or id(e) in seen:
      continue
    seen.add(id(e))
    if isinstance(e, LidcDataError):
      return e
    todo.extend([e.__cause__, e.__context__])
    todo.extend(getattr(e, 'exceptions', ()) or ())  # ExceptionGroup
  return None
