"""A stand-in for the three torchvision names the official DatasetCondensation scripts import
(``datasets.MNIST``, ``transforms``, ``utils.save_image``), so that ``main_DM.py`` runs
unmodified where torchvision cannot be installed beside the CPU torch. Used only by
``benchmarks/official_speed.py``; it reads the MNIST files already on disk (no download) and
saves no images."""
from . import datasets, transforms, utils  # noqa: F401
