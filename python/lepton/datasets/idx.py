"""Image datasets in the idx format (MNIST, Fashion-MNIST): parsing, and a dataset whose samples
are (float32 [1, H, W] image in [0, 1], int label)."""

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from lepton import _C
from lepton.data.dataset import Dataset
from lepton.datasets._files import cached, locate

__all__ = ["read_idx", "IdxDataset", "idx_dataset", "mnist", "fashion_mnist", "FASHION_MNIST_ROOT"]

FASHION_MNIST_ROOT = "/usr/share/datasets/fashion-mnist"
_MNIST_CLASSES = [str(d) for d in range(10)]
_FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                    "Ankle boot"]
# idx type codes: unsigned byte, signed byte, then big-endian short, int, float, double
_IDX_TYPES = {0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx(path):
    """The array stored in an idx file (gzip-compressed when its name ends in .gz), read-only."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"idx file '{path}' not found")
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as e:  # bad gzip header/CRC, truncated stream
        raise ValueError(f"'{path}' is not a readable idx file: {e}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise ValueError(f"'{path}' is not an idx file (magic bytes {data[:4].hex()})")
    ndim, header = data[3], 4 + 4 * data[3]
    if len(data) < header:
        raise ValueError(f"'{path}' is truncated inside its header")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    dtype = _IDX_TYPES[data[2]]
    need = math.prod(dims) * dtype.itemsize
    if len(data) - header != need:
        raise ValueError(f"'{path}' holds {len(data) - header} bytes of data, its header (shape {dims}) needs {need}")
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    return arr if dtype.itemsize == 1 else arr.astype(dtype.newbyteorder("="))


def _float_images(u8):
    """uint8 [..., H, W] -> float32 [..., 1, H, W] tensor in [0, 1] (x / 255, as torchvision)."""
    out = np.divide(u8[..., None, :, :], np.float32(255), dtype=np.float32)
    return _C.from_numpy(out)


class IdxDataset(Dataset):
    """Images (uint8 [N, H, W]) with integer labels (int64 [N]); sample i is (float32 tensor
    [1, H, W] in [0, 1], int label), and __getitems__ gives (float32 [B, 1, H, W], int64 [B])."""

    def __init__(self, images, labels, classes=None):
        images, labels = np.asarray(images), np.asarray(labels)
        if images.ndim != 3 or images.dtype != np.uint8:
            raise ValueError(f"IdxDataset: images must be uint8 [N, H, W], got {images.dtype} {images.shape}")
        if labels.ndim != 1 or len(labels) != len(images) or labels.dtype.kind not in "iu":
            raise ValueError(f"IdxDataset: labels must be integers [N] for {len(images)} images, "
                             f"got {labels.dtype} {labels.shape}")
        self.images, self.labels = images, labels.astype(np.int64)
        self.classes = list(classes) if classes is not None else sorted(set(self.labels.tolist()))
        if classes is not None and len(labels) and (self.labels.min() < 0 or self.labels.max() >= len(self.classes)):
            raise ValueError(f"IdxDataset: labels span {self.labels.min()}..{self.labels.max()}, "
                             f"but there are {len(self.classes)} classes")
        self._tensors = None

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        return _float_images(self.images[index]), int(self.labels[index])

    def __getitems__(self, indices):
        idx = np.asarray(indices, dtype=np.int64)
        return _float_images(self.images[idx]), _C.from_numpy(self.labels[idx])

    def tensors(self):
        """(float32 [N, 1, H, W] in [0, 1], int64 [N]) for the whole set, made once and kept."""
        if self._tensors is None:
            self._tensors = (_float_images(self.images), _C.from_numpy(self.labels.copy()))
        return self._tensors

    def __repr__(self):
        return f"IdxDataset({len(self)} images of {self.images.shape[1:]}, {len(self.classes)} classes)"


def idx_dataset(images_path, labels_path, classes=None):
    """An IdxDataset from an idx images file [N, H, W] and an idx labels file [N]."""
    images = cached(read_idx, Path(images_path))
    labels = cached(read_idx, Path(labels_path))
    if len(images) != len(labels):
        raise ValueError(f"'{images_path}' has {len(images)} images but '{labels_path}' has {len(labels)} labels")
    return IdxDataset(images, labels, classes)


def _standard_pair(root, train, classes, missing_hint=""):
    split = "train" if train else "t10k"
    images = locate(root, f"{split}-images-idx3-ubyte.gz", missing_hint)
    labels = locate(root, f"{split}-labels-idx1-ubyte.gz", missing_hint)
    return idx_dataset(images, labels, classes)


def mnist(train=True, root=None):
    """MNIST (60,000 training or 10,000 test digits): the copy bundled with Lepton, or the standard
    idx files in `root`."""
    return _standard_pair(root, train, _MNIST_CLASSES)


def fashion_mnist(train=True, root=None):
    """Fashion-MNIST from `root` (default /usr/share/datasets/fashion-mnist, where Debian's
    dataset-fashion-mnist package puts it)."""
    hint = (f"; install Fashion-MNIST with `apt install dataset-fashion-mnist` or pass root= a directory holding "
            f"the four idx files" if root is None else "")
    return _standard_pair(FASHION_MNIST_ROOT if root is None else root, train, _FASHION_CLASSES, hint)
