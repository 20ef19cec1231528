"""The main job: the built-in synthetic ambiguity data set (known answer).

A small HPU-Net (6 levels at 32 x 32, channels 8..64, latents at 1x1, 2x2
and 4x4) trained with the ELBO
on procedurally generated lesions whose annotation distribution is known, so
that evaluation can compare with the oracle (true annotations vs true
annotations at the same N) and with the true mode frequencies.

  python scripts/train.py --config configs/synthetic.py --workdir runs/synthetic

Measured on a 2-core CPU (one device, no GPU): 668 s in all, install
included (3,000 steps at ~190 images/s, then the evaluation of the 200
validation images with 16 and 100 samples). It reaches validation ged16
0.164 (oracle at the same N: 0.112), ged100 0.145 (0.092), hm_iou16 0.717,
sncc16 0.877, mode_tv 0.197 (sampling-noise floor 0.058); see the README.
"""
from configs import base


def get_config():
  config = base.get_config()
  # Latents at 1x1, 2x2 and 4x4 with 2, 2 and 1 channels. With (1, 1, 1, 1)
  # (one channel at 1x1 .. 8x8) the 1x1 and 2x2 levels collapsed (KL ~0.001)
  # and validation ged16 after 2k steps was 0.170 instead of 0.151.
  config.model.latent_dims = (2, 2, 1)
  config.model.channels_per_block = (8, 16, 32, 64, 64, 64)
  config.model.convs_per_block = 2
  config.model.blocks_per_level = 1

  config.loss.loss_type = 'elbo'
  config.loss.beta = 1.0
  config.loss.top_k_percentage = 1.0

  config.data.name = 'synthetic'
  config.data.image_size = 32
  config.data.synthetic.num_train = 20_000
  config.data.synthetic.num_validation = 200
  config.data.synthetic.num_test = 1_000
  config.data.synthetic.cache = True
  config.data.augment.flip = True
  config.data.augment.rot90 = True

  config.train.batch_size = 32
  # A constant 1e-3 until one late decay. Measured (validation ged16 with 16
  # samples on the first 100 images, same seed): the 1x1 level takes over
  # the "marked at all" decision only while the rate is high (KL of the 1x1
  # latent 0.09 -> 0.43 nats from step 2k to 3k at 1e-3, 0.09 -> 0.18 after
  # a decay at 2k), and ged16 at 3k was 0.138 against 0.144 with that decay.
  # 2e-3 left the 1x1 level unused (KL 0.008) and reached 0.142 at 3k; 16
  # channels at 32 x 32 also left it unused (0.167 at 2k, against 0.151).
  config.train.learning_rate = 1e-3
  config.train.lr_boundaries = (4_200,)
  config.train.lr_decay = 0.3
  config.train.num_steps = 4_500
  config.train.log_every = 50
  config.train.checkpoint_every = 500
  config.train.eval_every = 1_000
  config.train.eval_num_examples = 100

  config.eval.num_samples = (16, 100)
  config.eval.num_examples = 0
  config.eval.batch_size = 25
  return config
