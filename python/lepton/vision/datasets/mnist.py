"""MNIST and Fashion-MNIST as torchvision serves them: sample i is (PIL image of mode 'L', int label).

Lepton never downloads. The idx files (train/t10k-images-idx3-ubyte and -labels-idx1-ubyte, each
optionally .gz) are looked for in root/<Name>/raw (torchvision's layout), then in root itself, then
in Lepton's own copy: MNIST is bundled with Lepton, Fashion-MNIST comes from Debian's
dataset-fashion-mnist package (/usr/share/datasets/fashion-mnist). download=True changes nothing.
"""

import os

from PIL import Image

import lepton
from lepton import datasets as _idx
from lepton.vision.datasets.vision import VisionDataset

__all__ = ["MNIST", "FashionMNIST"]


class MNIST(VisionDataset):
    """MNIST handwritten digits: 60,000 training (train=True) or 10,000 test images of 28x28.

    data: uint8 tensor [N, 28, 28]; targets: int64 tensor [N]; classes; class_to_idx."""

    classes = ["0 - zero", "1 - one", "2 - two", "3 - three", "4 - four", "5 - five", "6 - six", "7 - seven",
               "8 - eight", "9 - nine"]
    _where_lepton_keeps_it = "the copy bundled with Lepton"

    def __init__(self, root, train=True, transform=None, target_transform=None, download=False):
        super().__init__(root, transform=transform, target_transform=target_transform)
        self.train = bool(train)
        images, labels = self._load(download)
        # copies: .data may be modified in place without touching the process-wide parsed files
        self.data = lepton.from_numpy(images.copy())
        self.targets = lepton.from_numpy(labels.copy())

    @staticmethod
    def _read(train, root):
        return _idx.mnist(train=train, root=root)

    @property
    def raw_folder(self):
        return os.path.join(self.root, type(self).__name__, "raw")

    @property
    def class_to_idx(self):
        return {name: i for i, name in enumerate(self.classes)}

    def _load(self, download):
        folders = [self.raw_folder, self.root] if self.root is not None else []
        for folder in folders + [None]:  # None: Lepton's own copy
            try:
                found = self._read(self.train, folder)
                return found.images, found.labels
            except FileNotFoundError as e:
                if folder is not None:
                    continue
                split = "train" if self.train else "t10k"
                raise RuntimeError(f"Dataset not found: {type(self).__name__}'s {split}-images-idx3-ubyte[.gz] and "
                                   f"{split}-labels-idx1-ubyte[.gz] are in none of {folders}, nor in "
                                   f"{self._where_lepton_keeps_it} ({e}). Lepton does not download datasets "
                                   f"(download={download} only looks locally): put the idx files in one of those "
                                   "folders.") from None

    def __getitem__(self, index):
        img = Image.fromarray(self.data[index].numpy())  # uint8 [28, 28]: mode L
        target = int(self.targets[index])
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return img, target

    def __len__(self):
        return len(self.data)

    def extra_repr(self):
        return f"Split: {'Train' if self.train else 'Test'}"


class FashionMNIST(MNIST):
    """Zalando's Fashion-MNIST: 60,000 training or 10,000 test 28x28 images of 10 kinds of clothing."""

    classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
               "Ankle boot"]
    _where_lepton_keeps_it = "Debian's dataset-fashion-mnist package"

    @staticmethod
    def _read(train, root):
        return _idx.fashion_mnist(train=train, root=root)
