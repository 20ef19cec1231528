"""A small HPU-Net on the LIDC-IDRI slices for about 2 hours of a 2-core CPU.

  python scripts/train.py --config configs/lidc_slices_cpu.py --workdir runs/lidc_cpu \
      --config.data.dir=/path/to/LIDC-IDRI-slices

About 72 to 90 min of training on a 2-core CPU (up to about 2.5 hours on a
slow hour), then about 6 min of evaluation. One training so far (seed 0,
2026-12-02), the shipped `lidc_slices_cpu` weights: test split (1,718
slices) GED16 0.248, HM-IoU16 0.585; the validation split, which the
settings were selected on, 0.216 and 0.613. The same model trained with the
ELBO instead of GECO gave 0.270 and 0.560 on test (mean of three seeds).
Details and history: docs/results.md.
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

  # The original's loss, GECO with the stochastic top-k of 2 % of the pixels
  # (lidc_slices.py), with the reachable kappa 0.3 instead of the paper's 0.05
  # (at 64 x 64 this model's top-2 % cross-entropy levels off at about 0.29).
  # Chosen on validation over the ELBO with free nats (GED16 0.216 against
  # 0.231, HM-IoU16 0.613 against 0.588 to 0.593).
  config.loss.kappa = 0.3
  config.loss.kl_free_nats_coarsest = 0.0
  config.loss.kl_free_nats_steps = 0

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
