"""HPU-Net on DeepMind's LIDC crops (LIDC v2), the paper's protocol (GPU).

The original's LIDC model (8 levels, channels 24..192, 4 latent levels),
GECO with kappa 0.05 and 2 % stochastic top-k, batch 32, Adam 1e-4 halved at
60k, 120k, 180k and 210k steps, 240k steps; 128 x 128 random crops of the
180 x 180 images for training, the centre crop for evaluation.

  python scripts/train.py --config configs/lidc_crops.py --workdir runs/lidc_crops \
      --config.data.dir=/path/to/deepmind/lidc   # train/val/test .tar.gz or folders

Not run to the end by this project (no GPU time for 240k steps); on a 2-core
CPU one step of batch 32 takes about 30 s.
"""
from configs import base


def get_config():
  config = base.get_config()
  config.data.name = 'lidc_crops'
  config.data.image_size = 128
  config.data.augment.random_crop = True
  return config
