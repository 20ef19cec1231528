"""HPU-Net on DeepMind's LIDC crops (LIDC v2): the original's protocol (GPU).

  python scripts/train.py --config configs/lidc_crops.py --workdir runs/lidc_crops \
      --config.data.dir=/path/to/deepmind/lidc   # train/val/test .tar.gz or folders

240k steps of batch 32 on random 128 x 128 crops of the 180 x 180 images:
about 2.9 hours on one H100 (estimated); not run to the end, result not
measured. See docs/results.md.
"""
from configs import base


def get_config():
  config = base.get_config()
  config.data.name = 'lidc_crops'
  config.data.image_size = 128
  config.data.augment.random_crop = True
  # On a CPU, glibc reuses XLA's large buffers: 1.15x faster train steps for
  # this network (hpu_jax/host_memory.py; nothing changes on a GPU).
  config.train.host_malloc = 'reuse'
  return config
