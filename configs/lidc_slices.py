"""HPU-Net on the LIDC-IDRI slices (LIDC v1: 128 x 128 crops, 4 masks each).

The original's LIDC model and protocol (8 levels, channels 24..192, 4 latent
levels, GECO kappa 0.05, 2 % stochastic top-k, batch 32, Adam 1e-4 halved at
60k, 120k, 180k and 210k steps, 240k steps), on the slices layout with a
patient-level train / validation / test split (70 / 15 / 15 %, recorded in the
prepared data set). Flips and 90-degree rotations for training; the crops
are already 128 x 128, so there is no random crop.

  python scripts/train.py --config configs/lidc_slices.py --workdir runs/lidc_slices \
      --config.data.dir=../shared/data/lidc-idri-slices

The first run prepares the archive into data.prepared_dir (about a minute).
The GPU configuration: 240k steps are out of reach of a CPU (about 20 s per
step of batch 32 on 2 cores). On one H100 (jax 0.11.2, float32) the train
step runs 734 images/s (scripts/benchmark.py, batch 32), so the whole
protocol would take about 2.9 hours; not run to the end by this project yet
(one GPU session trained 599 steps: see the README's Results on LIDC).
"""
from configs import base


def get_config():
  config = base.get_config()
  config.data.name = 'lidc_slices'
  config.data.dir = '../shared/data/lidc-idri-slices'
  config.data.image_size = 128
  config.data.augment.flip = True
  config.data.augment.rot90 = True
  config.train.eval_every = 5_000
  config.train.eval_num_examples = 500
  return config
