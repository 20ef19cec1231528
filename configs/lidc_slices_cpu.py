"""A small HPU-Net on the LIDC-IDRI slices for about 2 hours of a 2-core CPU.

  python scripts/train.py --config configs/lidc_slices_cpu.py --workdir runs/lidc_cpu \
      --config.data.dir=/path/to/LIDC-IDRI-slices

About 72 min of training on a 2-core CPU on a fast hour (up to about 2.5 hours
on a slow one), then about 6 min of evaluation. Test split (1,718 slices),
three trainings (seeds 0, 1, 2): GED16 0.264, 0.273, 0.272 and HM-IoU16
0.568, 0.557, 0.556 (mean 0.270 and 0.560); the validation split, which the
settings were selected on, gives 0.231 to 0.232 and 0.588 to 0.593. The
shipped `lidc_slices_cpu` weights are seed 0, the best of the three on
validation (HM-IoU16 0.593, GED16 tied). Details and history: docs/results.md.
"""
from configs import lidc_slices


def get_config():
  config = lidc_slices.get_config()
  # The central 64 x 64 of the stored 128 x 128 crops (the nodule is there).
  config.data.image_size = 64
  config.data.augment.random_crop = False

  config.model.latent_dims = (2, 2, 1)
  config.model.channels_per_block = (16, 32, 64, 64, 64, 64, 64)
  config.model.convs_per_block = 2
  config.model.blocks_per_level = 1
  # The 1x1 level's prior a mixture of 5 diagonal Gaussians (the original: one
  # Gaussian, prior_components=1). Chosen on validation in two trainings.
  config.model.prior_components = 5

  # The ELBO over every pixel, with 1 free nat on the 1x1 latent for the first
  # 2,700 steps. The original's GECO (top 2 %, at a reachable kappa of 0.3)
  # gave the best single training on validation (GED16 0.216, HM-IoU16 0.613)
  # but a second seed gave 0.279 and 0.529: over two seeds it is worse than
  # this ELBO, whose three seeds agree to 0.001 and 0.005 (docs/results.md).
  config.loss.loss_type = 'elbo'
  config.loss.beta = 1.0
  config.loss.top_k_percentage = 1.0
  config.loss.kl_free_nats_coarsest = 1.0
  config.loss.kl_free_nats_steps = 2_700

  config.train.batch_size = 32
  config.train.learning_rate = 1e-3
  config.train.num_steps = 8_000
  config.train.lr_boundaries = (5_900, 7_100)
  config.train.lr_decay = 0.3
  config.train.log_every = 50
  config.train.checkpoint_every = 500
  config.train.eval_every = 1_000
  config.train.eval_num_examples = 100

  config.eval.num_samples = (16, 100)
  config.eval.batch_size = 16
  config.eval.num_examples = 0     # The whole validation split.
  return config
