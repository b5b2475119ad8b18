"""lepton.datasets: MNIST and a Shakespeare corpus bundled with Lepton (checked against their
SHA-256 sums on first use), Fashion-MNIST from Debian's dataset-fashion-mnist package, any idx
files, and a character-level language-modelling dataset."""

from lepton.datasets.idx import IdxDataset, fashion_mnist, idx_dataset, mnist, read_idx
from lepton.datasets.text import CharDataset, shakespeare

__all__ = ["mnist", "fashion_mnist", "idx_dataset", "read_idx", "IdxDataset", "shakespeare", "CharDataset"]
