"""lepton.vision.datasets: torchvision.datasets' MNIST and FashionMNIST (from local idx files, never
downloaded), ImageFolder / DatasetFolder, FakeData, and the VisionDataset base class."""

from lepton.vision.datasets.fake import FakeData
from lepton.vision.datasets.folder import DatasetFolder, ImageFolder
from lepton.vision.datasets.mnist import MNIST, FashionMNIST
from lepton.vision.datasets.vision import StandardTransform, VisionDataset

__all__ = ["FakeData", "MNIST", "FashionMNIST", "ImageFolder", "DatasetFolder", "VisionDataset", "StandardTransform"]
