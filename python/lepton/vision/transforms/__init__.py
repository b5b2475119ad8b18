"""lepton.vision.transforms: torchvision.transforms' classes (transforms.py) and functions
(functional.py) for PIL images and Lepton tensors. Random transforms draw from Python's `random`
module (`random.seed(s)` makes them reproducible), or inside a DataLoader worker thread from a
generator seeded with the worker's seed (see transforms.py)."""

from lepton.vision.transforms import functional
from lepton.vision.transforms.functional import InterpolationMode
from lepton.vision.transforms.transforms import *  # noqa: F401,F403
from lepton.vision.transforms.transforms import __all__ as _transform_names

__all__ = ["functional", "InterpolationMode", *_transform_names]
