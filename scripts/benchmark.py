"""Measures the HPU-Net's speed on this machine; prints one JSON line.

  python scripts/benchmark.py --config configs/lidc_crops.py --batch 8

train_images_per_s: forward, backward and Adam update of the GECO loss.
sample_images_per_s: sampled label maps per second, `--samples` per image
through the jitted sampler (prior encoder shared across samples).
Times are medians over `--repeats` timed calls after one compile call.
"""
import argparse
import importlib.util
import json
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from hpu_jax import configuration, parameter_split  # noqa: E402
from hpu_jax.model import model_summary  # noqa: E402
from hpu_jax.sampling import make_sampler  # noqa: E402
from hpu_jax.train_step import create_train_state, make_train_step  # noqa: E402


def load_config(path):
  spec = importlib.util.spec_from_file_location('config_module', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def median_seconds(fn, repeats):
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--config', required=True)
  parser.add_argument('--batch', type=int, default=8)
  parser.add_argument('--size', type=int, default=None, help='default: config.data.image_size')
  parser.add_argument('--samples', type=int, default=16)
  parser.add_argument('--repeats', type=int, default=5)
  args = parser.parse_args()
  config = load_config(args.config)
  size = args.size or config.data.image_size
  model = configuration.build_model(config.model)
  optimizer = configuration.optimizer(config.train)
  state = create_train_state(model, optimizer, jax.random.key(0), (args.batch, size, size, 1))
  step = jax.jit(make_train_step(model, optimizer, configuration.loss_config(config.loss)),
                 donate_argnums=0)
  images = jax.random.uniform(jax.random.key(1), (args.batch, size, size, 1))
  labels = (jax.random.uniform(jax.random.key(2), (args.batch, size, size)) > 0.9).astype(jnp.int32)

  start = time.perf_counter()
  state, _ = step(state, images, labels)
  jax.block_until_ready(state)
  train_compile_s = time.perf_counter() - start
  holder = [state]

  def one_step():
    holder[0], metrics = step(holder[0], images, labels)
    return metrics
  train_s = median_seconds(one_step, args.repeats)

  sample = make_sampler(model)
  params = holder[0].params['model']
  start = time.perf_counter()
  jax.block_until_ready(sample(params, jax.random.key(3), images, args.samples))
  sample_compile_s = time.perf_counter() - start
  sample_s = median_seconds(lambda: sample(params, jax.random.key(4), images, args.samples).labels,
                            args.repeats)
  print(model_summary(params), file=sys.stderr)
  counts = parameter_split(params)
  print(json.dumps(dict(
      impl='hpu_jax', jax=jax.__version__, device=jax.devices()[0].device_kind,
      params=counts['total'], params_prior=counts['prior'],
      params_posterior=counts['posterior'], params_f_comb=counts['f_comb'], size=size, batch=args.batch,
      samples_per_image=args.samples,
      train_images_per_s=round(args.batch / train_s, 2),
      sample_images_per_s=round(args.batch * args.samples / sample_s, 2),
      train_compile_s=round(train_compile_s, 1), sample_compile_s=round(sample_compile_s, 1))))


if __name__ == '__main__':
  main()
