"""HPU-Net on DeepMind's LIDC crops (LIDC v2), paper-style protocol.

The default LIDC architecture of the original (8 levels, channels 24..192,
latents (1, 1, 1, 1)), GECO with kappa 0.05 and 2 % stochastic top-k, batch 32,
Adam 1e-4 halved at 60k, 120k, 180k and 210k steps, 240k steps.

Benchmark the model:
  python scripts/benchmark.py --config configs/lidc_crops.py --batch 8
"""
import ml_collections


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()

  config.model = ml_collections.ConfigDict()
  config.model.num_classes = 2
  config.model.latent_dims = (1, 1, 1, 1)
  config.model.channels_per_block = (24, 48, 96, 192, 192, 192, 192, 192)
  # Empty tuple: half of channels_per_block (the original's default list).
  config.model.down_channels_per_block = ()
  config.model.convs_per_block = 3
  config.model.blocks_per_level = 3
  # Numerical guard: log sigma of every latent Gaussian is clipped to
  # [-bound, bound]. Identity inside the bound; 0 disables it (the original).
  # Range: 0 or any positive float; 10 keeps sigma within [4.5e-5, 2.2e4].
  config.model.log_sigma_bound = 10.0

  config.loss = ml_collections.ConfigDict()
  config.loss.loss_type = 'geco'          # 'geco' or 'elbo'.
  config.loss.beta = 1.0                  # ELBO only.
  config.loss.kappa = 0.05
  config.loss.decay = 0.99
  config.loss.rate = 0.01
  config.loss.top_k_percentage = 0.02     # 1.0: every pixel.
  config.loss.deterministic_top_k = False

  config.data = ml_collections.ConfigDict()
  config.data.image_size = 128

  config.train = ml_collections.ConfigDict()
  config.train.batch_size = 32
  config.train.learning_rate = 1e-4
  config.train.lr_boundaries = (60_000, 120_000, 180_000, 210_000)
  config.train.lr_decay = 0.5
  config.train.num_steps = 240_000
  config.train.seed = 0
  return config
