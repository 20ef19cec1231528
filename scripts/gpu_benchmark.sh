#!/usr/bin/env bash
# Benchmarks the HPU-Net on a GPU machine in one call: scripts/benchmark.py at
# batch 32 in float32 and bfloat16, one JSON line each, with JAX's persistent
# compilation cache kept in the output folder so that a later run on a fresh
# machine can reuse it (copy $OUT/jax_cache back and pass it as CACHE_DIR).
#
#   OUT=gpu_out bash scripts/gpu_benchmark.sh
#   WHEELS=/path/to/wheels CONFIG=configs/lidc_slices.py OUT=gpu_out bash scripts/gpu_benchmark.sh
#
# Settings (environment variables):
#   CONFIG      the config to benchmark (default configs/lidc_slices.py, the
#               original's LIDC model at 128 x 128)
#   BATCH       global batch (default 32); REPEATS timed calls (default 20)
#   DTYPES      compute dtypes to measure (default "float32 bfloat16")
#   TIMEOUT_S   limit per benchmark in seconds (default 300: XLA autotunes the
#               convolutions on the first compile, which can take minutes)
#   WHEELS      a folder of wheels to install missing packages from (a GPU
#               machine without internet); skipped when unset
#   CACHE_DIR   the compilation cache to use (default $OUT/jax_cache)
#   OUT         where everything goes (default gpu_out): gpu.txt (device and
#               versions), benchmark.jsonl, benchmark_<dtype>.err
# Exit status: 0 if every benchmark printed its JSON line, 1 otherwise.
set -u
OUT=${OUT:-gpu_out}
CONFIG=${CONFIG:-configs/lidc_slices.py}
BATCH=${BATCH:-32}
REPEATS=${REPEATS:-20}
DTYPES=${DTYPES:-float32 bfloat16}
TIMEOUT_S=${TIMEOUT_S:-300}
CACHE_DIR=${CACHE_DIR:-$OUT/jax_cache}
mkdir -p "$OUT" "$CACHE_DIR"
export PYTHONUNBUFFERED=1
export JAX_COMPILATION_CACHE_DIR=$CACHE_DIR
export JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0
T0=$(date +%s)

if [ -n "${WHEELS:-}" ]; then
  python3 -m pip install -q --no-index --find-links "$WHEELS" -e . 2>&1 | tail -n 3
fi
{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
  python3 -c 'import jax, haiku, distrax, optax; print("jax", jax.__version__, "haiku", haiku.__version__, "distrax", distrax.__version__, "optax", optax.__version__, jax.devices())'
} 2>&1 | tee "$OUT/gpu.txt"

status=0
for dtype in $DTYPES; do
  line=$(timeout "$TIMEOUT_S" python3 scripts/benchmark.py --config "$CONFIG" \
      --batch "$BATCH" --samples 16 --repeats "$REPEATS" --dtype "$dtype" --no_2dev \
      2>"$OUT/benchmark_$dtype.err" | tail -n 1)
  if [ -n "$line" ]; then
    echo "$line" | tee -a "$OUT/benchmark.jsonl"
  else
    echo "benchmark $dtype: no result (see $OUT/benchmark_$dtype.err)"; status=1
  fi
  echo "benchmark $dtype: done $(( $(date +%s) - T0 )) s after the start"
done
exit $status
