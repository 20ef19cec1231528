#!/usr/bin/env bash
# Benchmarks the HPU-Net on one GPU in one call of at most 8 minutes:
# scripts/benchmark.py on the original's LIDC model (configs/lidc_slices.py,
# 128 x 128, batch 32) in float32 and bfloat16, each with XLA's default
# command buffers (CUDA graphs, which leave convolutions out) and with command
# buffers that include the convolutions. Per variant: one JSON line, a profile
# of 5 train steps and its summary (kernels per step, GPU busy fraction). The
# compilation and autotuning cache is kept for the next run.
#
#   bash scripts/gpu_benchmark.sh                       # everything, into gpu_out/
#   bash scripts/gpu_benchmark.sh --out gpu_out2 --reuse gpu_out/compile_cache
#   bash scripts/gpu_benchmark.sh --dry-run             # print the plan, run nothing
#
# Options (or the environment variable in capitals, e.g. OUT=gpu_out):
#   --out DIR        where everything goes (default gpu_out)
#   --config FILE    default configs/lidc_slices.py; --batch N (32); --repeats N (20)
#   --dtypes LIST    compute dtypes (default "float32 bfloat16")
#   --modes LIST     command-buffer variants (default "cb_default cb_conv"):
#                      cb_default  XLA's default: command buffers for fusions,
#                                  cuBLAS(Lt), cuDNN fusions, custom calls,
#                                  conditionals; convolutions run outside them
#                      cb_conv     --xla_gpu_enable_command_buffer=+CONVOLUTION
#                                  --xla_gpu_graph_min_graph_size=1
#                      cb_off      --xla_gpu_enable_command_buffer= (none)
#   --budget_s S     wall-time budget of the whole call (default 480): a variant
#                    that cannot get --min_run_s (60) before the budget minus
#                    --reserve_s (20) is skipped with a message
#   --timeout_s S    limit per benchmark (default 300), cut to what the budget leaves
#   --cache_dir DIR  the compilation + autotuning cache used and updated
#                    (default runs/gpu_compile_cache, relative to the repository
#                    root). Give the same path string every run: JAX's cache
#                    keys contain it (hpu_jax/compile_cache.py).
#   --reuse DIR      a cache from an earlier run (its OUT/compile_cache), copied
#                    into --cache_dir first
#   --wheels DIR     wheels to install missing packages from, offline (default
#                    scripts/wheels beside this script, else .whl/); used only
#                    when a requirement of setup.py is missing
#   --dry-run        check the options, print what would run, run nothing
#
# Filling the wheels folder, on a connected machine with the same Python
# version and platform as the GPU machine (pip wheel also builds the few
# packages published only as source, e.g. promise):
#   pip wheel --wheel-dir scripts/wheels dm-haiku distrax ml-collections \
#       tensorflow-datasets optax orbax-checkpoint grain array-record \
#       tensorboardX scipy pillow matplotlib tqdm pydicom
#   rm -f scripts/wheels/jax-* scripts/wheels/jaxlib-*   # the GPU machine has its own
#
# What OUT holds: gpu.txt (device, driver, versions); benchmark.jsonl (one
# JSON line per variant: scripts/benchmark.py's fields plus variant,
# script_wall_s, cache_programs_before/after, autotune_results_after);
# benchmark_<variant>.err; profiles/<variant>/ (jax.profiler's trace, when
# scripts/benchmark.py has --profile_dir); profile_<variant>.json and .txt
# (hpu_jax/profile_summary.py); summary.txt (one row per variant, skips
# included); compile_cache/ (a copy of --cache_dir: pass it as --reuse next time).
# Exit status: 0 if every variant printed its JSON line, 1 if one failed or was
# skipped, 2 for a bad option or missing packages.
set -u
cd "$(dirname "$0")/.." || exit 2
SCRIPT_DIR=scripts

OUT=${OUT:-gpu_out}
CONFIG=${CONFIG:-configs/lidc_slices.py}
BATCH=${BATCH:-32}
REPEATS=${REPEATS:-20}
DTYPES=${DTYPES:-float32 bfloat16}
MODES=${MODES:-cb_default cb_conv}
BUDGET_S=${BUDGET_S:-480}
TIMEOUT_S=${TIMEOUT_S:-300}
MIN_RUN_S=${MIN_RUN_S:-60}
RESERVE_S=${RESERVE_S:-20}
CACHE_DIR=${CACHE_DIR:-runs/gpu_compile_cache}
REUSE=${REUSE:-}
WHEELS=${WHEELS:-}
DRY_RUN=${DRY_RUN:-0}
PYTHON=${PYTHON:-python3}
PROFILE_STEPS=5            # What scripts/benchmark.py --profile_dir profiles.
AUTOTUNE_DIR=xla_gpu_per_fusion_autotune_cache_dir
# Without it XLA runs op by op while a profiler is active, so a profile would
# not show the command buffers being measured.
PROFILE_FLAG=--xla_enable_command_buffers_during_profiling=true

usage() { sed -n '2,/^set -u/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }
die() { echo "error: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    -n|--dry-run|--dry_run) DRY_RUN=1; shift; continue ;;
    --*=*) key=${1%%=*}; val=${1#*=}; shift ;;
    --*) key=$1; [ $# -ge 2 ] || die "$1 needs a value"; val=$2; shift 2 ;;
    *) die "unexpected argument '$1' (see --help)" ;;
  esac
  case "${key//-/_}" in
    __out) OUT=$val ;;
    __config) CONFIG=$val ;;
    __batch) BATCH=$val ;;
    __repeats) REPEATS=$val ;;
    __dtypes) DTYPES=$val ;;
    __modes) MODES=$val ;;
    __budget_s) BUDGET_S=$val ;;
    __timeout_s) TIMEOUT_S=$val ;;
    __min_run_s) MIN_RUN_S=$val ;;
    __reserve_s) RESERVE_S=$val ;;
    __cache_dir) CACHE_DIR=$val ;;
    __reuse) REUSE=$val ;;
    __wheels) WHEELS=$val ;;
    *) die "unknown option $key (see --help)" ;;
  esac
done

for name in BATCH REPEATS BUDGET_S TIMEOUT_S MIN_RUN_S RESERVE_S; do
  [[ ${!name} =~ ^[0-9]+$ ]] || die "$name=${!name}: expected a whole number"
done
[ -f "$CONFIG" ] || die "--config $CONFIG: no such file"
[ -n "$CACHE_DIR" ] || die "--cache_dir is empty: expected a directory"
[ -z "$REUSE" ] || [ -d "$REUSE" ] || die "--reuse $REUSE: no such directory"
for dtype in $DTYPES; do
  case $dtype in float32|bfloat16) ;; *) die "--dtypes: '$dtype' is not float32 or bfloat16" ;; esac
done

mode_flags() {   # The XLA flags of a command-buffer variant.
  case $1 in
    cb_default) echo "" ;;
    cb_conv) echo "--xla_gpu_enable_command_buffer=+CONVOLUTION --xla_gpu_graph_min_graph_size=1" ;;
    cb_off) echo "--xla_gpu_enable_command_buffer=" ;;
    *) return 1 ;;
  esac
}
for mode in $MODES; do
  mode_flags "$mode" >/dev/null || die "--modes: '$mode' is not cb_default, cb_conv or cb_off"
done
VARIANTS=()
for dtype in $DTYPES; do for mode in $MODES; do VARIANTS+=("${dtype}_${mode}"); done; done
[ ${#VARIANTS[@]} -gt 0 ] || die "no variants: --dtypes and --modes must not be empty"

# scripts/benchmark.py writes a profile only once it has --profile_dir.
HAS_PROFILE=0
grep -q "'profile_dir'" scripts/benchmark.py && grep -q "'profile_steps'" scripts/benchmark.py \
    && HAS_PROFILE=1

T0=$(date +%s)
elapsed() { echo $(( $(date +%s) - T0 )); }
count_programs() { ls "$CACHE_DIR" 2>/dev/null | grep -c -- '-cache$'; }
count_tuned() { find "$CACHE_DIR/$AUTOTUNE_DIR" -type f 2>/dev/null | wc -l; }

if [ "$DRY_RUN" != 1 ]; then
  mkdir -p "$OUT" "$CACHE_DIR/$AUTOTUNE_DIR" || die "cannot create $OUT or $CACHE_DIR"
  export PYTHONUNBUFFERED=1
  # Install what setup.py requires and is missing, from local wheels.
  missing=$("$PYTHON" - <<'EOF'
import ast, importlib.metadata as md, re
tree = ast.parse(open('setup.py').read())
reqs = next(ast.literal_eval(k.value) for n in ast.walk(tree) if isinstance(n, ast.Call)
            for k in n.keywords if k.arg == 'install_requires')
for req in reqs:
  try:
    md.distribution(re.split(r'[<>=!~ ;\[]', req)[0])
  except md.PackageNotFoundError:
    print(req.replace(' ', ''))
EOF
)
  if [ -n "$missing" ]; then
    if [ -z "$WHEELS" ]; then
      for d in "$SCRIPT_DIR/wheels" .whl; do [ -d "$d" ] && WHEELS=$d && break; done
    fi
    [ -n "$WHEELS" ] && [ -d "$WHEELS" ] || die "missing packages: $(echo $missing) and no wheels folder (--wheels, scripts/wheels or .whl; see --help)"
    echo "installing from $WHEELS: $(echo $missing)"
    # shellcheck disable=SC2086
    "$PYTHON" -m pip install -q --no-index --find-links "$WHEELS" $missing 2>&1 | tail -n 5
    [ "${PIPESTATUS[0]}" = 0 ] || die "pip could not install $(echo $missing) from $WHEELS"
    echo "installed in $(elapsed) s"
  fi
  if [ -n "$REUSE" ] && [ "$(cd "$REUSE" && pwd -P)" != "$(cd "$CACHE_DIR" && pwd -P)" ]; then
    cp -a "$REUSE"/. "$CACHE_DIR"/ && echo "cache: copied $REUSE into $CACHE_DIR"
  fi
  {
    date -u
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
    "$PYTHON" -c 'import jax, jaxlib, haiku, distrax, optax; print("jax", jax.__version__, "jaxlib", jaxlib.__version__, "haiku", haiku.__version__, "distrax", distrax.__version__, "optax", optax.__version__, jax.devices())'
    echo "XLA_FLAGS=${XLA_FLAGS:-}"
    echo "cache $CACHE_DIR: $(count_programs) programs, $(count_tuned) autotuning results"
  } 2>&1 | tee "$OUT/gpu.txt"
fi

# Flags the installed XLA refuses would abort the benchmark: checked first on
# the CPU backend, which parses XLA_FLAGS with the same XLA as the GPU plugin.
declare -A CHECKED=()
accepted() {
  [ "$DRY_RUN" = 1 ] && return 0
  [ -n "${CHECKED["x$1"]+set}" ] && return "${CHECKED["x$1"]}"
  if XLA_FLAGS="$1" JAX_PLATFORMS=cpu env -u JAX_COMPILATION_CACHE_DIR "$PYTHON" -c \
      'import jax; jax.jit(lambda x: x + 1)(1.0)' >/dev/null 2>"$OUT/flag_check.err"; then
    CHECKED["x$1"]=0
  else
    echo "the installed XLA refuses '$1': $(grep -m1 -E 'Unknown flag|Illegal value' "$OUT/flag_check.err")"
    CHECKED["x$1"]=1
  fi
  return "${CHECKED["x$1"]}"
}
BASE_FLAGS=${XLA_FLAGS:-}
if [ "$HAS_PROFILE" = 1 ] && accepted "$PROFILE_FLAG"; then
  BASE_FLAGS="$BASE_FLAGS $PROFILE_FLAG"
fi
[ "$HAS_PROFILE" = 1 ] || echo "scripts/benchmark.py has no --profile_dir yet: no profiles"

export JAX_COMPILATION_CACHE_DIR=$CACHE_DIR   # Also for a benchmark.py that ignores the field.
export JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0
export JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES=-1
export JAX_PERSISTENT_CACHE_ENABLE_XLA_CACHES=$AUTOTUNE_DIR

status=0
ROWS=()
for variant in "${VARIANTS[@]}"; do
  dtype=${variant%%_*}; mode=${variant#*_}
  read -r -a parts <<< "$BASE_FLAGS $(mode_flags "$mode")"
  flags="${parts[*]+${parts[*]}}"
  left=$(( BUDGET_S - $(elapsed) - RESERVE_S ))
  limit=$(( left < TIMEOUT_S ? left : TIMEOUT_S ))
  if [ "$limit" -lt "$MIN_RUN_S" ]; then
    echo "skipped $variant: $left s left of the ${BUDGET_S} s budget (needs $MIN_RUN_S)"
    ROWS+=("$variant skipped: out of time"); status=1; continue
  fi
  if ! accepted "$flags"; then
    ROWS+=("$variant skipped: XLA refuses its flags"); status=1; continue
  fi
  cmd=("$PYTHON" scripts/benchmark.py --config "$CONFIG" --batch "$BATCH" --samples 16
       --repeats "$REPEATS" --dtype "$dtype" --no_2dev
       "--config.train.compilation_cache_dir=$CACHE_DIR")
  [ "$HAS_PROFILE" = 1 ] && cmd+=(--profile_dir "$OUT/profiles/$variant" --profile_steps "$PROFILE_STEPS")
  if [ "$DRY_RUN" = 1 ]; then
    echo "would run $variant (limit $limit s): XLA_FLAGS='$flags' ${cmd[*]}"
    continue
  fi
  before=$(count_programs); start=$(elapsed)
  rm -rf "$OUT/profiles/$variant"
  line=$(XLA_FLAGS="$flags" timeout -k 10 "$limit" "${cmd[@]}" 2>"$OUT/benchmark_$variant.err" | tail -n 1)
  wall=$(( $(elapsed) - start ))
  if [ "${line:0:1}" = "{" ]; then
    line=$("$PYTHON" - "$line" "$variant" "$wall" "$before" "$(count_programs)" "$(count_tuned)" <<'EOF'
import json, sys
line, variant, wall, before, after, tuned = sys.argv[1:]
d = json.loads(line)
d.update(variant=variant, script_wall_s=int(wall), cache_programs_before=int(before),
         cache_programs_after=int(after), autotune_results_after=int(tuned))
print(json.dumps(d))
EOF
)
    echo "$line" | tee -a "$OUT/benchmark.jsonl"
  else
    echo "benchmark $variant: no result after $wall s (limit $limit s; see $OUT/benchmark_$variant.err):"
    tail -n 3 "$OUT/benchmark_$variant.err"
    ROWS+=("$variant failed: no JSON line after $wall s"); status=1
  fi
  if [ -d "$OUT/profiles/$variant" ]; then
    "$PYTHON" hpu_jax/profile_summary.py "$OUT/profiles/$variant" --steps "$PROFILE_STEPS" \
        --out "$OUT/profile_$variant.json" > "$OUT/profile_$variant.txt" 2>&1
    sed -n '3,5p' "$OUT/profile_$variant.txt"
  fi
  echo "benchmark $variant: done $(elapsed) s after the start"
done
[ "$DRY_RUN" = 1 ] && exit $status

if [ "$(cd "$CACHE_DIR" && pwd -P)" != "$(mkdir -p "$OUT/compile_cache" && cd "$OUT/compile_cache" && pwd -P)" ]; then
  rm -rf "$OUT/compile_cache" && cp -a "$CACHE_DIR" "$OUT/compile_cache"
fi
{
  "$PYTHON" - "$OUT" <<'EOF'
import json, os, sys
out = sys.argv[1]
print(f"{'variant':24} {'train img/s':>11} {'compile s':>9} {'sample img/s':>12} "
      f"{'GPU MiB':>8} {'kernels/step':>12} {'busy':>6}")
path = os.path.join(out, 'benchmark.jsonl')
for line in open(path) if os.path.exists(path) else []:
  d = json.loads(line)
  p = os.path.join(out, f"profile_{d['variant']}.json")
  prof = json.load(open(p)) if os.path.exists(p) else {}
  print(f"{d['variant']:24} {d.get('train_images_per_s')!s:>11} {d.get('train_compile_s')!s:>9} "
        f"{d.get('sample_images_per_s')!s:>12} {d.get('peak_device_memory_mb')!s:>8} "
        f"{prof.get('kernels_per_step', '-')!s:>12} {prof.get('busy_fraction', '-')!s:>6}")
EOF
  for row in ${ROWS[@]+"${ROWS[@]}"}; do echo "$row"; done
  echo "cache $CACHE_DIR: $(count_programs) programs, $(count_tuned) autotuning results; copy in $OUT/compile_cache"
  echo "total $(elapsed) s of the ${BUDGET_S} s budget"
} 2>&1 | tee "$OUT/summary.txt"
exit $status
