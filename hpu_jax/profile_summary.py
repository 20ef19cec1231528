"""Summarises a jax.profiler trace: kernels per train step and how busy the
device was.

    python hpu_jax/profile_summary.py PROFILE_DIR [--steps 5] [--out summary.json]

PROFILE_DIR is what `jax.profiler.trace(PROFILE_DIR)` (or
`scripts/benchmark.py --profile_dir PROFILE_DIR`) wrote; the trace read is the
Chrome trace-event file `PROFILE_DIR/plugins/profile/<newest run>/<host>.trace.json.gz`
(a `perfetto_trace.json.gz` or a single trace file also works). Standard
library only: it runs without JAX, e.g. on a laptop over a copied trace.

What counts as what:
  * On GPU (processes named `/device:GPU:N`), a *kernel* is an event on a
    stream line (`Stream #...`) that is not a memory copy or set; the lines
    XLA's profiler derives from them (`XLA Modules`, `XLA Ops`, `Steps`, ...)
    are not counted again.
  * On CPU there is no device process, only host threads; a *kernel* is then
    one XLA:CPU operation (an event with an `hlo_op`), which is what runs the
    model's work there.
  * A *step* is one execution of the step program: the XLA module with the
    most kernel time, its executions told apart by the `XLA Modules` line
    (GPU) or the `run_id` of its kernels. Failing those, jax.profiler
    StepTraceAnnotation events (host events with a `step_num`), else the
    `steps` given, over the span of all kernels. When `steps` is given and
    the executions are not that many but the annotations are, the
    annotations count (the note says when nothing in the trace agrees).
  * The *wall time* is from the first step's start to the last one's end
    (gaps between steps, where the device waits for the host, included);
    kernels are those starting in it, whichever program they belong to.
  * *busy_fraction* = the union of the kernels' intervals (overlapping kernels
    on several streams count once) / the wall time.

`summarize(path)` returns a dict; `format_table(summary)` a few readable lines.
"""
import argparse
import glob
import gzip
import json
import os
import re
import statistics
import sys
from collections import defaultdict
from typing import Optional

# Lines the profiler derives from a device's stream lines (not kernels again).
DERIVED_LINES = ('XLA Modules', 'XLA Ops', 'XLA TraceMe', 'Steps', 'Framework Ops',
                 'Framework Name Scope', 'TensorFlow Ops', 'TensorFlow Name Scope',
                 'Source code', 'Async XLA Ops', 'Launch Stats')
_DEVICE_RE = re.compile(r'/device:(?!CPU)', re.IGNORECASE)
_COPY_RE = re.compile(r'^\s*(cuda)?mem(cpy|set)', re.IGNORECASE)
_MODULE_RUN_RE = re.compile(r'^(.*?)\((\d+)\)$')   # 'jit_step(12)' on `XLA Modules`.
TOP = 10


def find_traces(path: str) -> list:
  """The trace files of the newest profile run under `path` (one per host), or
  [path] for a file."""
  if os.path.isfile(path):
    return [path]
  runs = sorted(glob.glob(os.path.join(path, 'plugins', 'profile', '*', '')))
  candidates = []
  for run in sorted(runs, key=os.path.getmtime, reverse=True):
    candidates = sorted(glob.glob(os.path.join(run, '*.trace.json.gz')))
    candidates = candidates or glob.glob(os.path.join(run, 'perfetto_trace.json*'))
    if candidates:
      break
  if not candidates:   # Not the usual layout: any trace file below.
    found = glob.glob(os.path.join(path, '**', '*.trace.json.gz'), recursive=True)
    found = found or glob.glob(os.path.join(path, '**', 'perfetto_trace.json*'),
                               recursive=True)
    candidates = sorted(found, key=os.path.getmtime)[-1:]
  if not candidates:
    raise FileNotFoundError(f'{path}: no *.trace.json.gz (nor perfetto_trace.json.gz) '
                            'found; expected a directory jax.profiler.trace wrote.')
  return candidates


def _read(file: str) -> dict:
  opener = gzip.open if file.endswith('.gz') else open
  with opener(file, 'rt', encoding='utf-8') as f:
    trace = json.load(f)
  return {'traceEvents': trace} if isinstance(trace, list) else trace


def load(files) -> tuple:
  """(complete events, {pid: process name}, {(pid, tid): thread name}) of the
  trace files, pids kept apart per file."""
  events, processes, threads = [], {}, {}
  for index, file in enumerate(files):
    for e in _read(file).get('traceEvents', []):
      pid = (index, e.get('pid'))
      if e.get('ph') == 'M':
        name = (e.get('args') or {}).get('name', '')
        if e.get('name') == 'process_name':
          processes[pid] = name
        elif e.get('name') == 'thread_name':
          threads[(pid, e.get('tid'))] = name
      elif e.get('ph') == 'X' and 'ts' in e:
        events.append(dict(e, pid=pid, ts=float(e['ts']), dur=float(e.get('dur', 0.0))))
  return events, processes, threads


def union_length(intervals, start: float = float('-inf'), end: float = float('inf')) -> float:
  """Total length covered by [a, b) intervals, clipped to [start, end)."""
  total, reach = 0.0, start
  for a, b in sorted((max(a, start), min(b, end)) for a, b in intervals):
    if b <= reach:
      continue
    total += b - max(a, reach)
    reach = b
  return total


def _is_copy(e) -> bool:
  args = e.get('args') or {}
  return bool(_COPY_RE.match(e.get('name', ''))) or 'memcpy_details' in args or \
      'memset_details' in args


def _classify(events, processes, threads):
  """(platform, device names, kernels, copies, module executions, where the
  executions came from, streams or threads used)."""
  devices = sorted({p for p, name in processes.items() if _DEVICE_RE.search(name)})
  if devices:
    stream_lines = {k for k, name in threads.items()
                    if k[0] in devices and name.lower().startswith('stream')}
    if not stream_lines:   # Another naming: every device line but the derived ones.
      stream_lines = {k for k, name in threads.items()
                      if k[0] in devices and name not in DERIVED_LINES}
    on_streams = [e for e in events if (e['pid'], e.get('tid')) in stream_lines]
    kernels = [e for e in on_streams if not _is_copy(e)]
    copies = [e for e in on_streams if _is_copy(e)]
    module_lines = {k for k, name in threads.items()
                    if k[0] in devices and name == 'XLA Modules'}
    executions = []
    for e in events:
      if (e['pid'], e.get('tid')) in module_lines:
        match = _MODULE_RUN_RE.match(e['name'])
        module = match.group(1) if match else e['name']
        executions.append((module, e['ts'], e['ts'] + e['dur']))
    source = 'xla_modules'
    if not executions:
      executions, source = _executions_by_run_id(kernels), 'run_id'
    names = [processes[p] for p in devices]
    platform = 'gpu' if any('gpu' in n.lower() for n in names) else 'device'
    streams = len({(e['pid'], e.get('tid')) for e in kernels})
    return platform, names, kernels, copies, executions, source, streams
  kernels = [e for e in events if 'hlo_op' in (e.get('args') or {})
             and not e.get('name', '').startswith('end: ')]
  threads_used = len({(e['pid'], e.get('tid')) for e in kernels})
  return 'host', [], kernels, [], _executions_by_run_id(kernels), 'run_id', threads_used


def _executions_by_run_id(kernels) -> list:
  """(module, start, end) per (hlo_module, run_id) of kernels carrying both."""
  spans = {}
  for e in kernels:
    args = e.get('args') or {}
    if 'hlo_module' in args and 'run_id' in args:
      key = (args['hlo_module'], args['run_id'])
      a, b = spans.get(key, (e['ts'], e['ts'] + e['dur']))
      spans[key] = (min(a, e['ts']), max(b, e['ts'] + e['dur']))
  return [(module, a, b) for (module, _), (a, b) in spans.items()]


def _step_program(executions, kernels, module_re: Optional[str]):
  """The module whose executions are the steps: matching `module_re` if given,
  else the one with the most kernel time inside its executions."""
  by_module = defaultdict(list)
  for module, a, b in executions:
    if module_re is None or re.search(module_re, module):
      by_module[module].append((a, b))
  if not by_module:
    return None, []
  starts = sorted((e['ts'], e['ts'] + e['dur']) for e in kernels)

  def kernel_time(spans):
    return sum(union_length(starts, a, b) for a, b in spans)
  module = max(sorted(by_module), key=lambda m: kernel_time(by_module[m]))
  return module, sorted(by_module[module])


def summarize(path: str, steps: Optional[int] = None, module: Optional[str] = None) -> dict:
  """The summary of the trace at `path` (a profile directory or a trace file).
  `steps`: the number of steps profiled, used only when the trace itself
  does not tell the steps apart; `module`: a regex picking the step program
  by name instead of the one with the most kernel time."""
  files = find_traces(path)
  events, processes, threads = load(files)
  platform, devices, kernels, copies, executions, source, streams = _classify(
      events, processes, threads)
  if not kernels:
    raise ValueError(f'{files[0]}: no kernels found (no stream events on a device, '
                     'no XLA:CPU op events on the host).')
  program, spans = _step_program(executions, kernels, module)
  marks = sorted((e['ts'], e['ts'] + e['dur']) for e in events
                 if 'step_num' in (e.get('args') or {}))
  # Ways to tell the steps apart, best first: (count, start, end, source).
  found = []
  if spans:
    found.append((len(spans), spans[0][0], max(b for _, b in spans), source))
  if marks:   # Host dispatch spans: the window runs to the last kernel's end.
    end = max([marks[-1][1]] + [e['ts'] + e['dur'] for e in kernels if e['ts'] >= marks[0][0]])
    found.append((len(marks), marks[0][0], end, 'step_annotations'))
  found.append((steps, min(e['ts'] for e in kernels),
                max(e['ts'] + e['dur'] for e in kernels), 'argument' if steps else 'none'))
  # With `steps` known, the first way in the trace that finds that many (e.g.
  # the annotations, when the profiler merged back-to-back executions into
  # one module event); else the best way, with a note if it disagrees.
  chosen = next((f for f in found[:-1] if steps and f[0] == steps), found[0])
  count, start, end, source = chosen
  if not spans or chosen is not found[0]:
    program = None   # The steps are not that program's executions.
  note = ''
  if steps and count and steps != count:
    note = f'{count} steps found in the trace, {steps} expected.'
  inside = [e for e in kernels if start <= e['ts'] < end]
  wall = end - start
  busy = union_length(((e['ts'], e['ts'] + e['dur']) for e in inside), start, end)
  copies_in = [e for e in copies if start <= e['ts'] < end]
  durations = [e['dur'] for e in inside]
  per_name = defaultdict(lambda: [0, 0.0])
  for e in inside:
    per_name[e['name']][0] += 1
    per_name[e['name']][1] += e['dur']
  total = sum(durations) or 1.0
  top = sorted(per_name.items(), key=lambda kv: -kv[1][1])[:TOP]
  return {
      'trace': files[0] if len(files) == 1 else files,
      'platform': platform,
      'devices': devices,
      'kernel_kind': ('XLA:CPU operations on host threads (no device in the trace)'
                      if platform == 'host' else 'device kernels on stream lines'),
      'steps': count,
      'steps_from': source,
      'step_program': program,
      'wall_ms': _r(wall / 1e3),
      'step_ms': _r(wall / 1e3 / count) if count else None,
      'kernels': len(inside),
      'kernels_per_step': _r(len(inside) / count) if count else None,
      'kernel_ms': _r(sum(durations) / 1e3),
      'busy_ms': _r(busy / 1e3),
      'busy_fraction': _r(busy / wall) if wall > 0 else None,
      'mean_kernel_us': _r(statistics.mean(durations)) if durations else None,
      'median_kernel_us': _r(statistics.median(durations)) if durations else None,
      'streams': streams,
      'copies': len(copies_in),
      'copy_ms': _r(sum(e['dur'] for e in copies_in) / 1e3),
      'top_kernels': [{'name': n[:160], 'count': c, 'ms': _r(t / 1e3), 'share': _r(t / total)}
                      for n, (c, t) in top],
      'note': note,
  }


def _r(x: float) -> float:
  return float(f'{x:.4g}')


def format_table(s: dict) -> str:
  where = ', '.join(s['devices']) or 'host only'
  lines = [
      f"trace: {s['trace']}",
      f"{where}: {s['kernel_kind']}",
      f"steps: {s['steps']} (from {s['steps_from']}; program {s['step_program']})",
      f"wall {s['wall_ms']} ms ({s['step_ms']} ms per step); kernels {s['kernels']} "
      f"({s['kernels_per_step']} per step, median {s['median_kernel_us']} us) on "
      f"{s['streams']} streams/threads",
      f"busy {s['busy_ms']} ms of {s['wall_ms']}: busy_fraction {s['busy_fraction']}; "
      f"copies {s['copies']} ({s['copy_ms']} ms)",
      'top kernels by time:']
  lines += [f"  {k['share']:6.1%} {k['ms']:9.3f} ms {k['count']:6d}x  {k['name'][:100]}"
            for k in s['top_kernels']]
  if s['note']:
    lines.append(f"note: {s['note']}")
  return '\n'.join(lines)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('path', help='profile directory (or a trace file)')
  parser.add_argument('--steps', type=int, default=None,
                      help='steps profiled (used if the trace does not tell them apart)')
  parser.add_argument('--module', default=None, help='regex of the step program')
  parser.add_argument('--out', default=None, help='write the summary as JSON here')
  args = parser.parse_args(argv)
  try:
    summary = summarize(args.path, steps=args.steps, module=args.module)
  except (FileNotFoundError, ValueError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  if args.out:
    with open(args.out, 'w', encoding='utf-8') as f:
      json.dump(summary, f, indent=1)
      f.write('\n')
  print(format_table(summary))
  return 0


if __name__ == '__main__':
  sys.exit(main())
