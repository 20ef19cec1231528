from setuptools import find_packages, setup

setup(
    name='hpu_jax',
    version='0.1.0',
    description='The Hierarchical Probabilistic U-Net (Kohl et al. 2019) in JAX + Haiku.',
    long_description=open('README.md').read(),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['hpu_jax', 'hpu_jax.*']),
    # The shipped weights, example slices and their licence (hpu_jax/pretrained).
    package_data={'hpu_jax.pretrained': ['*.npz', '*.md']},
    python_requires='>=3.10',
    install_requires=[
        'jax>=0.4.30',
        'jaxlib>=0.4.30',
        'dm-haiku>=0.0.12',
        'optax>=0.2.2',
        'distrax>=0.1.5',
        'ml-collections>=0.1.1',
        'tensorflow-datasets>=4.9.4',
        'numpy>=1.24',
        'array-record>=0.5',       # TFDS's record format, read without TensorFlow.
        'grain>=0.2.2',            # Index-addressable input pipeline (exact resume).
        'orbax-checkpoint>=0.6',   # Atomic, async-safe checkpoints.
        'tensorboardX>=2.6',       # TensorBoard event files without TensorFlow.
        'scipy>=1.10',             # linear_sum_assignment for HM-IoU; QR of the init.
        'pillow>=9.1',             # PNG decoding (LIDC formats) and GIFs.
        'matplotlib>=3.6',         # Evaluation pictures.
        'tqdm>=4.60',              # Progress bars.
        'pydicom>=2.4',            # Raw LIDC-IDRI CT series (DICOM), lidc_raw.
    ],
    # pytest-xdist runs the test files in parallel, one worker per core: most
    # of the suite is XLA compiling small programs, one core each.
    extras_require={'test': ['pytest>=7', 'pytest-xdist>=3', 'nbclient>=0.7',
                             'nbformat>=5', 'ipykernel>=6']},
)
