"""A small HPU-Net on the LIDC-IDRI slices for about 2 hours of a 2-core CPU.

  python scripts/train.py --config configs/lidc_slices_cpu.py --workdir runs/lidc_cpu \
      --config.data.dir=/path/to/LIDC-IDRI-slices

  python scripts/train_presence.py --workdir runs/lidc_cpu
  python scripts/evaluate.py --workdir runs/lidc_cpu --presence --split test

The first command took 65 to 75 min in all on a 2-core AMD EPYC (59 to 69
min of training, 5 min of evaluation; 2026-12-03/04); up to about 2.5 hours
on a busy hour. The second trains the presence classifier (three, combined;
12 min each), which sets how often samples are empty (hpu_jax/presence.py);
the evaluation samples the 4x4 level at 0.85 (eval.temperature). Test split
(1,718 slices), three trainings (seeds 0, 1, 2) with the combined classifier:
GED16 0.242, 0.245, 0.247 and HM-IoU16 0.588, 0.586, 0.577 (mean 0.245 and
0.584); the HPU-Net alone at temperature 1: 0.262, 0.258, 0.272 and 0.573,
0.577, 0.565 (mean 0.264 and 0.572). The shipped `lidc_slices_cpu` weights
are seed 1, the best of the three on validation (HM-IoU16 0.602, GED16 tied
with seed 0).
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

  # The original's loss, GECO, with its pixel count and a kappa this model
  # reaches early: the stochastic top 8 % (327 pixels of a 64 x 64 slice, the
  # original's 2 % of 128 x 128) held at 0.08 per selected pixel, first met
  # near step 2,400; lambda peaks near 2 and settles near 0.5. The paper's
  # kappa 0.05 is met only at step 6,050 and the model ends far behind. Over
  # three seeds on validation it is ahead of the ELBO with free nats (GED16
  # 0.228 against 0.231, HM-IoU16 0.598 against 0.590; docs/results.md).
  config.loss.loss_type = 'geco'
  config.loss.top_k_percentage = 0.08
  config.loss.kappa = 0.08
  config.loss.kl_free_nats_coarsest = 0.0
  config.loss.kl_free_nats_steps = 0

  # YNNPACK's convolutions: about 1.2x faster training steps than XLA's Eigen
  # ones for this small network on a 2-core CPU (docs/speed.md).
  config.train.cpu_convolutions = 'ynnpack'
  # A small network: glibc's allocator as it comes (lidc_slices' 'reuse' pays
  # for the original's network only; hpu_jax/host_memory.py).
  config.train.host_malloc = 'system'
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
  # The 4x4 level drawn at 0.85 of its spread (1x1 and 2x2 as trained): chosen
  # on validation with the presence classifier (docs/results.md).
  config.eval.temperature = (1.0, 1.0, 0.85)
  return config
