"""The main job: a small HPU-Net on the built-in synthetic set (known answer).

  python scripts/train.py --config configs/synthetic.py --workdir runs/synthetic

About 9.5 to 14 min on a 2-core CPU (training, then evaluation of the 200
validation images with 16 and 100 samples). At seed 0: validation ged16 0.138
= 1.23x the oracle, mode_tv 0.112. History and other seeds: docs/results.md.
"""
from configs import base


def get_config():
  config = base.get_config()
  # Latents at 1x1, 2x2 and 4x4 with 2, 2 and 1 channels.
  config.model.latent_dims = (2, 2, 1)
  config.model.channels_per_block = (8, 16, 32, 64, 64, 64)
  config.model.convs_per_block = 2
  config.model.blocks_per_level = 1
  # The 1x1 level's prior: a mixture of 5 diagonal Gaussians (not original).
  config.model.prior_components = 5

  config.loss.loss_type = 'elbo'
  config.loss.beta = 1.0
  config.loss.top_k_percentage = 1.0
  # Free nats: the 1x1 latent's KL counts as max(KL, 1 nat) for 3,000 steps.
  config.loss.kl_free_nats_coarsest = 1.0
  config.loss.kl_free_nats_steps = 3_000

  config.data.name = 'synthetic'
  config.data.image_size = 32
  config.data.synthetic.num_train = 20_000
  config.data.synthetic.num_validation = 200
  config.data.synthetic.num_test = 1_000
  config.data.synthetic.cache = True
  config.data.augment.flip = True
  config.data.augment.rot90 = True

  config.train.batch_size = 16
  # Batch 16 and a constant 1e-3 until one late decay (x0.3 at 8,400).
  config.train.learning_rate = 1e-3
  config.train.lr_boundaries = (8_400,)
  config.train.lr_decay = 0.3
  config.train.num_steps = 9_000
  config.train.log_every = 100
  config.train.checkpoint_every = 1_000
  config.train.eval_every = 2_000
  config.train.eval_num_examples = 100

  config.eval.num_samples = (16, 100)
  config.eval.num_examples = 0
  config.eval.batch_size = 25
  return config
