"""What the scripts share on the command line: absl flags, the config through
ml_collections' config_flags, and one-line errors for a mistyped field.

    if __name__ == '__main__':
      cli.run(main)
"""
import re
import sys
from typing import Callable, List, Sequence

from absl import app, flags

_SUGGESTION_RE = re.compile(r'Did you mean "([\w.]+)" instead of "([\w.]+)"')
_KEY_RE = re.compile(r"^'?\\?'?([\w.]+)")


def config_field_error(argv: Sequence[str], error: Exception) -> str:
  """One line for an override of a config field that does not exist, with
  config_dict's suggestion: `--config.train.batchsize=3: no config field
  'batchsize' in train (did you mean 'batch_size'?)`."""
  message = str(error).replace('\\n', '\n')
  suggestion = _SUGGESTION_RE.search(message)
  wrong = suggestion.group(2) if suggestion else None
  if wrong is None:
    key = _KEY_RE.search(message.strip())
    wrong = key.group(1) if key else None
  flag = next((a for a in argv if a.startswith('--config.') and wrong
               and re.search(rf'[.]{re.escape(wrong)}([.=]|$)', a.split('=')[0])), None)
  where = flag or (f"'{wrong}'" if wrong else 'a --config.* flag')
  hint = f" (did you mean '{suggestion.group(1)}'?)" if suggestion else ''
  return f'error: {where}: no such config field{hint}.'


def parse_flags(argv: List[str]) -> List[str]:
  """absl's parsing, with a config override of an unknown field reported in
  one line (exit status 2) instead of a traceback."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    sys.exit(f'error: {e}\nPass --help to see the flags.')
  except (AttributeError, KeyError) as e:
    print(config_field_error(argv, e), file=sys.stderr)
    sys.exit(2)


def run(main: Callable[[List[str]], None]) -> None:
  app.run(main, flags_parser=parse_flags)
