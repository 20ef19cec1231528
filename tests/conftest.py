import os

# Two fake CPU devices for the multi-device paths; must be set before jax loads.
os.environ.setdefault('XLA_FLAGS', '--xla_force_host_platform_device_count=2')
