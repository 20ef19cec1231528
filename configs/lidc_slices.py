"""HPU-Net on the LIDC-IDRI slices (LIDC v1): the original's protocol (GPU).

  python scripts/train.py --config configs/lidc_slices.py --workdir runs/lidc_slices \
      --config.data.dir=/path/to/LIDC-IDRI-slices

240k steps of batch 32: about 2.9 hours on one H100 (734 images/s measured;
not run to the end), far out of reach of a CPU. Result not measured yet; see
docs/results.md. For a CPU, use lidc_slices_cpu.py.
"""
from configs import base


def get_config():
  config = base.get_config()
  config.data.name = 'lidc_slices'
  config.data.image_size = 128
  config.data.augment.flip = True
  config.data.augment.rot90 = True
  config.train.eval_every = 5_000
  config.train.eval_num_examples = 500
  return config
