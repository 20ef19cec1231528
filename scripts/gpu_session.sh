#!/usr/bin/env bash
# One GPU session's measurements, in a fixed wall-clock budget:
#   1. scripts/benchmark.py on the paper configuration (configs/lidc_slices.py,
#      128 x 128) at batch 32 in float32 and bfloat16: train images/s, compile
#      time, peak GPU memory, sampled images/s, FLOP/s against a matmul peak;
#   2. training the paper configuration on prepared LIDC slices for the time
#      that is left (train.time_limit_minutes), then the evaluation of its
#      final parameters on the validation split.
#
#   PREPARED_DIR=~/tfds_lidc OUT=gpu_out BUDGET_S=480 bash scripts/gpu_session.sh
#
# PREPARED_DIR holds the prepared lidc_slices (scripts/prepare_data.py).
# BUDGET_S is the whole script's budget in seconds; the training gets what the
# benchmarks leave, less EVAL_RESERVE_S for compiling and the evaluation.
# EVAL_EXAMPLES (default 600) validation slices are evaluated with N = 16 and
# 100. Everything goes to $OUT: gpu.txt, benchmark.jsonl, train.log, and the
# run's report.json, metrics.jsonl and samples_grid.png. EXTRA_FLAGS are added
# to the train command (e.g. a smaller model for a dry run on CPU).
#
# Measured on one H100 (2026-11-27, README "Speed"): the float32 benchmark took
# 148 s (train compile 57 s); the bfloat16 one was still autotuning its
# convolutions when a 150 s limit stopped it, hence the 300 s default. Keep
# eval.batch_size at its default of 16: 50 images x 100 samples asked XLA for
# about 70 GiB and made the evaluation slow.
set -u
T0=$(date +%s)
OUT=${OUT:-gpu_out}
PREPARED_DIR=${PREPARED_DIR:?set PREPARED_DIR to the prepared LIDC data}
BUDGET_S=${BUDGET_S:-480}
EVAL_RESERVE_S=${EVAL_RESERVE_S:-150}
EVAL_EXAMPLES=${EVAL_EXAMPLES:-600}
BENCH_REPEATS=${BENCH_REPEATS:-20}
BENCH_TIMEOUT_S=${BENCH_TIMEOUT_S:-300}
WORKDIR=${WORKDIR:-/tmp/hpu_jax_gpu_run}
EXTRA_FLAGS=${EXTRA_FLAGS:-}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1

{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1
  python3 -c 'import jax, haiku, distrax, optax; print("jax", jax.__version__, "haiku", haiku.__version__, "distrax", distrax.__version__, "optax", optax.__version__, jax.devices())'
} 2>&1 | tee "$OUT/gpu.txt"

for dtype in float32 bfloat16; do
  timeout "$BENCH_TIMEOUT_S" python3 scripts/benchmark.py --config configs/lidc_slices.py \
      --batch 32 --samples 16 --repeats "$BENCH_REPEATS" --dtype "$dtype" --no_2dev \
      2>"$OUT/benchmark_$dtype.err" | tail -n 1 | tee -a "$OUT/benchmark.jsonl"
  echo "benchmark $dtype: exit ${PIPESTATUS[0]}, $(( $(date +%s) - T0 )) s since start"
done

LEFT_S=$(( BUDGET_S - ($(date +%s) - T0) - EVAL_RESERVE_S ))
if [ "$LEFT_S" -lt 30 ]; then
  echo "only $LEFT_S s left for training: skipped"; exit 0
fi
MINUTES=$(python3 -c "print(round($LEFT_S / 60, 3))")
echo "training for $MINUTES minutes"
rm -rf "$WORKDIR"
TQDM_DISABLE=1 python3 scripts/train.py --config configs/lidc_slices.py --workdir "$WORKDIR" \
    --config.data.dir= --config.data.prepared_dir="$PREPARED_DIR" \
    --config.data.num_threads=12 \
    --config.train.time_limit_minutes="$MINUTES" \
    --config.train.eval_every=0 --config.train.log_every=200 \
    --config.train.checkpoint_every=2000 \
    --config.eval.num_examples="$EVAL_EXAMPLES" \
    $EXTRA_FLAGS 2>&1 | tee "$OUT/train.log"
echo "train + evaluation: exit ${PIPESTATUS[0]}, $(( $(date +%s) - T0 )) s since start"
for f in report.json metrics.jsonl samples_grid.png; do
  [ -f "$WORKDIR/$f" ] && cp "$WORKDIR/$f" "$OUT/"
done
python3 - "$WORKDIR" <<'EOF'
import json, os, sys
w = sys.argv[1]
rows = [json.loads(l) for l in open(os.path.join(w, 'metrics.jsonl'))]
rate = [r['perf/examples_per_s'] for r in rows[1:]]
print('steps', rows[-1]['step'], 'median images/s', sorted(rate)[len(rate) // 2] if rate else None)
print('last logged', {k: round(v, 4) for k, v in rows[-1].items()})
if os.path.exists(os.path.join(w, 'report.json')):
  rep = json.load(open(os.path.join(w, 'report.json')))
  print({k: v for k, v in rep.items() if not isinstance(v, (dict, list))})
EOF
