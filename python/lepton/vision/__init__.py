"""lepton.vision: torchvision's datasets (MNIST and Fashion-MNIST from local files, ImageFolder),
transforms (PIL images and Lepton tensors), models (ResNet, VGG, AlexNet, MobileNetV2; no downloaded
weights) and utils (make_grid, save_image), with torchvision's names and semantics; `import
torchvision` resolves here under `lepton run`."""

import lepton
from lepton.vision import datasets, models, transforms, utils

__version__ = lepton.__version__

__all__ = ["datasets", "models", "transforms", "utils", "__version__"]
