"""Measures the training input pipeline's rate (examples/s) for a config, to
compare with the train step's rate from scripts/benchmark.py.

  python scripts/benchmark_pipeline.py --config configs/synthetic.py --batches 200
  python scripts/benchmark_pipeline.py --config configs/lidc_slices.py \
      --config.data.dir=/path/to/LIDC-IDRI-slices

Prints one JSON line: examples/s over --batches batches (after 5 warm-up
batches), median of --repeats, with the pipeline's worker threads.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402
import numpy as np  # noqa: E402

from hpu_jax import cli, configuration  # noqa: E402
from hpu_jax.data import pipeline  # noqa: E402

config_flags.DEFINE_config_file('config', None, 'Config file.')
flags.DEFINE_integer('batches', 200, 'Batches per measurement.')
flags.DEFINE_integer('repeats', 3, 'Measurements.')
flags.DEFINE_integer('devices', 1, 'Leading device axis of the batches.')
flags.DEFINE_integer('threads', 2, 'Reader threads.')


def main(argv):
  del argv
  f = flags.FLAGS
  config = f.config
  source = configuration.data_source(config.data, 'train')
  stream = pipeline.train_batches(
      source, batch_size=int(config.train.batch_size), num_devices=f.devices,
      image_size=int(config.data.image_size), seed=0,
      augment=configuration.augment(config.data))
  rates = []
  for r in range(f.repeats):
    it = stream.iterate(r * (f.batches + 5), num_threads=f.threads)
    for _ in range(5):
      next(it)
    start = time.perf_counter()
    for _ in range(f.batches):
      next(it)
    rates.append(f.batches * int(config.train.batch_size) / (time.perf_counter() - start))
  print(json.dumps({'data': str(config.data.name), 'image_size': int(config.data.image_size),
                    'batch_size': int(config.train.batch_size), 'threads': f.threads,
                    'examples_per_s_median': round(float(np.median(rates)), 1),
                    'examples_per_s': [round(x, 1) for x in rates]}))


if __name__ == '__main__':
  flags.mark_flags_as_required(['config'])
  cli.run(main)
