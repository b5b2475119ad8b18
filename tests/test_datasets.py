"""lepton.datasets: the bundled MNIST and Shakespeare files (facts from shared/data/README.md),
SHA-256 checks, idx parsing, Fashion-MNIST lookup and the character-level dataset."""

import gzip
import hashlib
import os
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

import lepton
from lepton import datasets
from lepton.data import DataLoader
from lepton.datasets import _files, idx as idx_module

MNIST_FILES = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
               "t10k-labels-idx1-ubyte.gz"]
_IDX_CODES = {"u1": 0x08, "i1": 0x09, "i2": 0x0B, "i4": 0x0C, "f4": 0x0D, "f8": 0x0E}


def _write_idx(path, arr, gz=True):
    arr = np.asarray(arr)
    head = bytes([0, 0, _IDX_CODES[arr.dtype.str[1:]], arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    blob = head + arr.astype(arr.dtype.newbyteorder(">")).tobytes()
    Path(path).write_bytes(gzip.compress(blob) if gz else blob)


def _fake_pair(root, split, n=6, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28)).astype(np.uint8)
    labels = (np.arange(n) * 7 % 10).astype(np.uint8)
    _write_idx(Path(root) / f"{split}-images-idx3-ubyte.gz", images)
    _write_idx(Path(root) / f"{split}-labels-idx1-ubyte.gz", labels)
    return images, labels


@pytest.fixture(scope="module")
def train():
    return datasets.mnist(train=True)


# ---- MNIST ------------------------------------------------------------------------------------

def test_mnist_facts(train):
    test = datasets.mnist(train=False)
    assert len(train) == 60000 and len(test) == 10000
    assert train.images.shape == (60000, 28, 28) and train.images.dtype == np.uint8
    assert train.labels.dtype == np.int64 and train.classes == [str(d) for d in range(10)]
    assert train.labels[:5].tolist() == [5, 0, 4, 1, 9]
    assert test.labels[:5].tolist() == [7, 2, 1, 0, 4]
    assert np.bincount(train.labels).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert abs(train.images.mean() / 255 - 0.1307) < 5e-5


def test_mnist_samples_and_batches(train):
    x, y = train[0]
    assert isinstance(x, lepton.Tensor) and x.dtype == lepton.float32 and tuple(x.shape) == (1, 28, 28)
    assert y == 5 and isinstance(y, int)
    np.testing.assert_array_equal(x.numpy()[0], train.images[0] / np.float32(255))
    xb, yb = train.__getitems__([3, 0, 59999])
    assert tuple(xb.shape) == (3, 1, 28, 28) and yb.dtype == lepton.int64
    np.testing.assert_array_equal(xb.numpy()[1], x.numpy())
    np.testing.assert_array_equal(yb.numpy(), train.labels[[3, 0, 59999]])
    test = datasets.mnist(train=False)  # the smaller split keeps this fast
    xs, ys = test.tensors()
    assert tuple(xs.shape) == (10000, 1, 28, 28) and xs.dtype == lepton.float32 and ys.dtype == lepton.int64
    np.testing.assert_array_equal(xs.numpy()[:, 0], test.images / np.float32(255))
    np.testing.assert_array_equal(ys.numpy(), test.labels)
    assert test.tensors()[0] is xs  # made once


def test_mnist_through_loader(train):
    loader = DataLoader(train, batch_size=128, shuffle=True)
    assert len(loader) == 469
    xb, yb = next(iter(loader))
    assert tuple(xb.shape) == (128, 1, 28, 28) and tuple(yb.shape) == (128,)
    order = np.random.default_rng([0, 0, 0]).permutation(60000)[:128]
    np.testing.assert_array_equal(yb.numpy(), train.labels[order])


def test_bundled_files_match_their_sums():
    sums = {line.split()[1]: line.split()[0] for line in (_files.BUNDLED / "SHA256SUMS").read_text().splitlines()}
    assert sorted(sums) == sorted(MNIST_FILES + ["shakespeare.txt.gz"])
    for name in MNIST_FILES:  # locate() checks each and remembers it for the process
        path = _files.locate(None, name)
        assert _files._stamp(path) in _files._verified


def _copy_mnist(tmp_path):
    for name in MNIST_FILES + ["SHA256SUMS"]:
        shutil.copy(_files.BUNDLED / name, tmp_path / name)
        os.chmod(tmp_path / name, 0o644)


def test_sha_mismatch_on_corrupted_copy(tmp_path):
    _copy_mnist(tmp_path)
    assert datasets.mnist(train=False, root=tmp_path).labels[:5].tolist() == [7, 2, 1, 0, 4]
    target = tmp_path / "t10k-labels-idx1-ubyte.gz"
    blob = bytearray(target.read_bytes())
    blob[100] ^= 0xFF
    target.write_bytes(bytes(blob))
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte.gz' is corrupt or truncated: its SHA-256"):
        datasets.mnist(train=False, root=tmp_path)
    target.write_bytes(bytes(blob[:1000]))  # truncated: the size changed, so it is hashed again
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte.gz' is corrupt"):
        datasets.mnist(train=False, root=tmp_path)


def test_damaged_files_without_sums(tmp_path):
    images, labels = _fake_pair(tmp_path, "t10k")
    assert datasets.mnist(train=False, root=tmp_path).labels.tolist() == labels.tolist()
    gz = tmp_path / "t10k-images-idx3-ubyte.gz"
    gz.write_bytes(gz.read_bytes()[:-20])
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte.gz' is not a readable idx file"):
        datasets.mnist(train=False, root=tmp_path)
    gz.write_bytes(gzip.compress(b"\x00\x00\x08\x03" + struct.pack(">3I", 6, 28, 28) + b"\x00" * 100))
    with pytest.raises(ValueError, match="holds 100 bytes of data, its header \\(shape \\(6, 28, 28\\)\\) needs 4704"):
        datasets.mnist(train=False, root=tmp_path)
    gz.write_bytes(gzip.compress(b"PK\x03\x04 not idx"))
    with pytest.raises(ValueError, match="not an idx file"):
        datasets.mnist(train=False, root=tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        datasets.mnist(train=False, root=tmp_path)


def test_idx_dataset_raw_and_multibyte(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, size=(5, 3, 4)).astype(np.uint8)
    _write_idx(tmp_path / "im.idx", images, gz=False)
    _write_idx(tmp_path / "lab.idx.gz", np.array([0, 1, 2, 1, 0], dtype=">i4"))
    ds = datasets.idx_dataset(tmp_path / "im.idx", tmp_path / "lab.idx.gz", classes=["a", "b", "c"])
    np.testing.assert_array_equal(ds.images, images)
    assert ds.labels.tolist() == [0, 1, 2, 1, 0] and ds.classes == ["a", "b", "c"]
    assert tuple(ds[2][0].shape) == (1, 3, 4)
    for dt in ["f8", "i2", "i1"]:
        arr = np.arange(-6, 6).reshape(3, 4).astype(dt)
        _write_idx(tmp_path / f"x{dt}.gz", arr)
        out = datasets.read_idx(tmp_path / f"x{dt}.gz")
        assert out.dtype == arr.dtype and out.dtype.isnative
        np.testing.assert_array_equal(out, arr)
    _write_idx(tmp_path / "short.idx", np.zeros(4, dtype=np.uint8), gz=False)
    with pytest.raises(ValueError, match="has 5 images but .* has 4 labels"):
        datasets.idx_dataset(tmp_path / "im.idx", tmp_path / "short.idx")
    with pytest.raises(ValueError, match="labels span 0..2, but there are 2 classes"):
        datasets.idx_dataset(tmp_path / "im.idx", tmp_path / "lab.idx.gz", classes=["a", "b"])


# ---- Fashion-MNIST ----------------------------------------------------------------------------

def test_fashion_mnist_missing_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(idx_module, "FASHION_MNIST_ROOT", str(tmp_path / "absent"))
    with pytest.raises(FileNotFoundError, match="apt install dataset-fashion-mnist"):
        datasets.fashion_mnist()


def test_fashion_mnist_from_root(tmp_path):
    _, labels = _fake_pair(tmp_path, "train")
    ds = datasets.fashion_mnist(train=True, root=tmp_path)
    assert ds.labels.tolist() == labels.tolist() and ds.classes[9] == "Ankle boot" and len(ds.classes) == 10


@pytest.mark.skipif(not os.path.isdir(idx_module.FASHION_MNIST_ROOT), reason="dataset-fashion-mnist not installed")
def test_fashion_mnist_installed():
    train, test = datasets.fashion_mnist(), datasets.fashion_mnist(train=False)
    assert train.images.shape == (60000, 28, 28) and len(test) == 10000
    assert np.bincount(train.labels).tolist() == [6000] * 10 and np.bincount(test.labels).tolist() == [1000] * 10
    assert train.labels[:5].tolist() == [9, 0, 0, 3, 0]


# ---- Shakespeare and CharDataset -----------------------------------------------------------------

@pytest.fixture(scope="module")
def text():
    return datasets.shakespeare()


def test_shakespeare_facts(text):
    assert len(text) == 4724013 and len(set(text)) == 76
    assert text.isascii() and text.startswith("THESEUS:\n")
    assert datasets.shakespeare() is text  # read once per process


def test_shakespeare_from_root(tmp_path):
    (tmp_path / "shakespeare.txt").write_text("ROMEO:\nHello\n")
    assert datasets.shakespeare(root=tmp_path) == "ROMEO:\nHello\n"


def test_char_dataset_vocab_and_windows(text):
    ds = datasets.CharDataset(text, block_size=16)
    assert ds.vocab == sorted(set(text)) and ds.vocab_size == 76 and len(ds) == len(text) - 16
    assert all(ds.itos[ds.stoi[c]] == c for c in ds.vocab)
    assert ds.decode(ds.encode("To be, or not to be")) == "To be, or not to be"
    x, y = ds[1000]
    assert x.dtype == lepton.int64 and tuple(x.shape) == (16,)
    assert ds.decode(x) == text[1000:1016] and ds.decode(y) == text[1001:1017]
    xb, yb = ds.__getitems__([1000, 0, len(ds) - 1])
    assert tuple(xb.shape) == (3, 16)
    np.testing.assert_array_equal(xb.numpy()[0], x.numpy())
    assert ds.decode(yb[2]) == text[-16:]
    with pytest.raises(IndexError):
        ds[len(ds)]
    with pytest.raises(ValueError, match=r"\['é', '€'\]"):
        ds.encode("café €")
    with pytest.raises(ValueError, match="outside the vocabulary of 76"):
        ds.decode([3, 76])


def test_char_dataset_split_and_random_batch(text):
    ds = datasets.CharDataset(text, block_size=32)
    train, val = ds.split(0.1)
    assert train.vocab is ds.vocab and val.stoi == ds.stoi
    cut = int(len(text) * 0.9)
    assert len(train.data) == cut and len(val.data) == len(text) - cut
    assert train.decode(train.data[:20]) == text[:20] and val.decode(val.data[:20]) == text[cut:cut + 20]
    xb, yb = train.random_batch(8, np.random.default_rng(3))
    xb2, _ = train.random_batch(8, np.random.default_rng(3))
    np.testing.assert_array_equal(xb.numpy(), xb2.numpy())
    assert tuple(xb.shape) == (8, 32) and yb.dtype == lepton.int64
    np.testing.assert_array_equal(xb.numpy()[:, 1:], yb.numpy()[:, :-1])
    for row in xb.numpy():  # each row is a real window of the training text
        assert train.decode(row) in text[:cut]
    with pytest.raises(ValueError, match="val_fraction"):
        ds.split(1.0)


def test_char_dataset_given_vocab_and_errors():
    ds = datasets.CharDataset("abcabc", block_size=2, vocab="cba")
    assert ds.vocab == ["c", "b", "a"] and ds.encode("abc") == [2, 1, 0]
    with pytest.raises(ValueError, match=r"\['d'\]"):
        datasets.CharDataset("abd", block_size=1, vocab="abc")
    with pytest.raises(ValueError, match="block_size 3"):
        datasets.CharDataset("abc", block_size=3)
    with pytest.raises(ValueError, match="block_size"):
        datasets.CharDataset("abc", block_size=0)
    with pytest.raises(ValueError, match="distinct"):
        datasets.CharDataset("abc", block_size=1, vocab="aab")


def test_sha_of_bundled_text_is_checked():
    path = _files.locate(None, "shakespeare.txt.gz")
    assert hashlib.sha256(path.read_bytes()).hexdigest().startswith("473b1c0d")
    assert _files._stamp(path) in _files._verified
