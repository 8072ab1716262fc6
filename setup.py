"""Packages bpnet_tfx (model, input pipeline, training) and beam_jobs (records job).

The ranges below are the ones this project was tested with; constraints.txt pins the exact set
seen installing and importing together on Python 3.11. Beam workers receive this package with
--setup_file=./setup.py.
"""

import setuptools

INSTALL_REQUIRES = [
    'tensorflow>=2.21,<2.22',
    'keras>=3.15,<3.16',
    # tensorflow 2.21 no longer installs it; Keras' TensorBoard callback needs it.
    'tensorboard>=2.21,<2.22',
    'tensorflow-probability[tf]>=0.25,<0.26',  # [tf] brings tf-keras, needed under Keras 3.
    'tf-keras>=2.21,<2.22',
    'apache-beam>=2.77,<2.78',
    'google-crc32c>=1.9,<2',  # CRC32C of TFRecord framing (beam_jobs/records/writer.py).
    'isal>=1.9,<2',  # ISA-L gzip for the records job: faster than zlib (docs/benchmarks.md).
    'pyfaidx>=0.9.2,<0.10',
    'pyBigWig>=0.3.29,<0.4',
    'pysam>=0.24,<0.25',  # BAM/CRAM/SAM reads (beam_jobs.reads_to_bigwig, make_records --reads).
    'numpy>=2.4,<2.5',
    'pandas>=3.1,<3.2',
    'scipy>=1.16,<2',
    'absl-py>=2.5,<3',
    'matplotlib>=3.11,<3.12',
]

setuptools.setup(
    name='bpnet-tfx',
    version='0.1.0',
    description='BPNet on Apache Beam, tf.data and tf.distribute.',
    packages=setuptools.find_packages(
        include=['bpnet_tfx', 'bpnet_tfx.*', 'beam_jobs', 'beam_jobs.*']
    ),
    python_requires='>=3.11,<3.12',
    install_requires=INSTALL_REQUIRES,
    extras_require={
        'test': ['pytest>=9.2,<10', 'pytest-xdist>=3.8,<4', 'ruff==0.17.6'],
        # The records job on Beam's Dask runner (docs/runners.md); never needed otherwise.
        'dask': ['dask>=2026.8,<2026.9', 'distributed>=2026.8,<2026.9'],
        # Motif discovery (TF-MoDISco) and TOMTOM annotation: python -m bpnet_tfx.motifs
        # discover / annotate / pipeline (docs/motifs.md); scanning and in-silico experiments
        # run without it.
        'motifs': ['modisco-lite>=3.0,<3.1', 'memelite>=0.5,<0.6'],
    },
)
