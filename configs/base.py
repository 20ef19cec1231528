"""Defaults shared by every config (the original's LIDC model and protocol).

Not a config to train by itself: run synthetic.py, lidc_slices.py,
lidc_slices_cpu.py or lidc_crops.py, e.g.
  python scripts/train.py --config configs/synthetic.py --workdir runs/synthetic
Fields and sections: docs/training.md.
"""
import ml_collections


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()

  # The architecture (hpu_jax.build_hpunet's arguments). Defaults: the
  # original's LIDC model, 8 levels, channels 24..192, 4 latent levels.
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
  config.model.log_sigma_bound = 10.0
  # Dtype of the forward pass in training and sampling: 'float32' or
  # 'bfloat16' (bfloat16 compute with float32 parameters, optimiser state and
  # loss; see hpu_jax/precision.py and docs/training.md).
  config.model.compute_dtype = 'float32'
  # Rematerialisation: recompute each level's activations in the backward
  # pass instead of storing them (less memory, about 1.3x the compute).
  config.model.remat = False
  # Components of the coarsest latent level's prior: 1 is the original's
  # diagonal Gaussian; K > 1 a mixture of K diagonal Gaussians (the KL of
  # that level is then a one-sample estimate; see hpu_jax/losses.py).
  config.model.prior_components = 1

  config.loss = ml_collections.ConfigDict()
  config.loss.loss_type = 'geco'          # 'geco' or 'elbo'.
  config.loss.beta = 1.0                  # ELBO only.
  config.loss.kappa = 0.05                # GECO's target reconstruction loss.
  config.loss.decay = 0.99                # GECO's moving-average decay.
  config.loss.rate = 0.01                 # GECO's Lagrange-multiplier rate.
  config.loss.top_k_percentage = 0.02     # 1.0: every pixel.
  config.loss.deterministic_top_k = False
  # Free bits on the coarsest latent level for the first steps (0: off, as in
  # the original); see hpu_jax/losses.py kl_loss_term.
  config.loss.kl_free_nats_coarsest = 0.0
  config.loss.kl_free_nats_steps = 0
  # GECO: an upper bound on lambda, the projection that stops it winding up
  # while the network cannot yet reach kappa (None: unbounded, as in the
  # original); see hpu_jax/losses.py bound_lagmul_param.
  config.loss.lagmul_max = ml_collections.config_dict.placeholder(float)

  config.data = ml_collections.ConfigDict()
  # 'synthetic' (built in) or a LIDC format: 'lidc_raw', 'lidc_slices',
  # 'lidc_crops', 'lidc_pickle' (docs/data.md).
  config.data.name = 'synthetic'
  # Where the downloaded LIDC files are (the TFDS manual dir); unused for
  # synthetic. Prepared once into prepared_dir, then read from there.
  config.data.dir = ''
  config.data.prepared_dir = '~/tensorflow_datasets'
  config.data.skip_bad_examples = False   # True: skip and report bad files.
  config.data.image_size = 128            # The model's input size.
  config.data.synthetic = ml_collections.ConfigDict()
  config.data.synthetic.image_size = 0    # Stored size; 0: data.image_size.
  config.data.synthetic.num_annotations = 4
  config.data.synthetic.num_train = 20_000
  config.data.synthetic.num_validation = 500
  config.data.synthetic.num_test = 1_000
  config.data.synthetic.seed = 0
  # Keep the generated training examples in memory (synthetic.py: 100 MB
  # at 32 x 32; 20,000 examples at 128 x 128 would take 1.6 GB).
  config.data.synthetic.cache = False
  # data.name='folder': your own images/<id>.png and masks/<id>_<k>.png in
  # data.dir (docs/data.md). Without a splits.json there, ids are split by
  # the patient-level rule, grouped by the first group of this regex (e.g.
  # '^(P\d+)_' keeps a patient's slices together); '' : each id alone.
  config.data.folder = ml_collections.ConfigDict()
  config.data.folder.group_regex = ''
  config.data.num_threads = 2             # Reader threads of the train batches.
  # Keep the training split on every device, as stored (uint8), and crop,
  # flip and rotate inside the jitted step: the host sends indices only, for
  # accelerators the host pipeline cannot feed (hpu_jax/data/device_batches.py;
  # memory: the split once per device, e.g. 0.73 GB for the LIDC slices).
  config.data.on_device = False
  config.data.augment = ml_collections.ConfigDict()
  config.data.augment.flip = False
  config.data.augment.rot90 = False
  config.data.augment.random_crop = True  # Where stored size > image_size.

  config.train = ml_collections.ConfigDict()
  config.train.batch_size = 32            # Global: all hosts and devices.
  config.train.learning_rate = 1e-4
  config.train.lr_boundaries = (60_000, 120_000, 180_000, 210_000)
  config.train.lr_decay = 0.5
  config.train.num_steps = 240_000
  config.train.seed = 0
  config.train.log_every = 100            # Device metrics read back this often.
  config.train.checkpoint_every = 1_000
  config.train.keep_checkpoints = 3
  config.train.eval_every = 5_000         # Validation GED / HM-IoU; 0: off.
  config.train.eval_num_examples = 200    # 0: the whole validation split.
  config.train.eval_num_samples = 16
  # Wall-clock limit in minutes (0: none): the run stops at the first step
  # past it, saves a checkpoint there and evaluates as at the end; running the
  # same command again resumes towards num_steps. Single-host runs only.
  config.train.time_limit_minutes = 0.0
  # A directory (created if missing) for JAX's persistent compilation cache
  # and, on GPU, XLA's autotuning results, so that the next run, in a new
  # process or on a fresh machine, neither recompiles nor autotunes again.
  # '' : off. Give the same path string each time (e.g. relative to the
  # repository root): the path is part of the cache keys. hpu_jax/compile_cache.py.
  config.train.compilation_cache_dir = ''
  # Which library runs convolutions on CPU (no effect on GPU or TPU): 'eigen'
  # (XLA's Eigen convolutions, about 2x faster for the original's network) or
  # 'ynnpack' (XLA's default, faster for small networks such as
  # lidc_slices_cpu's). Applied by scripts/train.py before JAX starts.
  # hpu_jax/xla_cpu.py.
  config.train.cpu_convolutions = 'eigen'
  # How glibc serves XLA:CPU's buffers: 'system' as it comes, or 'reuse' (one
  # arena, no mmap, no trimming), faster for large networks, slower for small
  # ones (the synthetic job's). Nothing changes on a GPU. hpu_jax/host_memory.py.
  config.train.host_malloc = 'system'
  # Several processes (one per host) through jax.distributed: each of the
  # three below, when unset, comes from JAX_COORDINATOR_ADDRESS,
  # JAX_NUM_PROCESSES, JAX_PROCESS_ID, or a cluster JAX detects (SLURM, ...).
  config.train.distributed = False
  config.train.coordinator_address = ''   # HOST:PORT of process 0.
  config.train.num_processes = 0          # 0: unset.
  config.train.process_id = -1            # -1: unset.

  config.eval = ml_collections.ConfigDict()
  config.eval.at_end = True               # train.py evaluates when done.
  config.eval.split = 'validation'
  config.eval.num_samples = (16, 100)
  config.eval.batch_size = 16
  config.eval.num_examples = 0            # 0: the whole split.
  config.eval.modes = ('full', 'local', 'global')
  config.eval.picture_examples = 6
  config.eval.gif_frames = 8
  config.eval.seed = 0
  # Multiplies the standard deviations the latents are drawn with in the
  # evaluation and, by default, in scripts/sample.py: one factor for every
  # latent level, or one per level (coarsest first). (1.0,): as trained.
  config.eval.temperature = (1.0,)
  return config
