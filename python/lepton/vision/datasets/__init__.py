"""lepton.vision.datasets: torchvision.datasets' MNIST and FashionMNIST (from local idx files, never
downloaded), ImageFolder / DatasetFolder, and the VisionDataset base class."""

from lepton.vision.datasets.folder import DatasetFolder, ImageFolder
from lepton.vision.datasets.mnist import MNIST, FashionMNIST
from lepton.vision.datasets.vision import StandardTransform, VisionDataset

__all__ = ["MNIST", "FashionMNIST", "ImageFolder", "DatasetFolder", "VisionDataset", "StandardTransform"]
