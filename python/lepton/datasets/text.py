"""Text corpora and a character-level language-modelling dataset (nanoGPT's layout)."""

import gzip

import numpy as np

from lepton import _C
from lepton.data.dataset import Dataset
from lepton.datasets._files import cached, locate

__all__ = ["shakespeare", "CharDataset"]


def _read_text(path):
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
            return f.read().decode("utf-8")
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise ValueError(f"'{path}' is not a readable UTF-8 text file: {e}") from None


def shakespeare(root=None):
    """38 Shakespeare plays as one string (4,724,013 characters, 76 symbols): the bundled copy, or
    shakespeare.txt[.gz] in `root`."""
    return cached(_read_text, locate(root, "shakespeare.txt.gz"))


class CharDataset(Dataset):
    """Windows of `block_size` characters: sample i is (x, y) with x = ids[i : i+block_size] and
    y = ids[i+1 : i+block_size+1] (int64 tensors). The vocabulary is the sorted set of the text's
    characters unless given (then kept in the order given)."""

    def __init__(self, text, block_size, vocab=None):
        if not isinstance(block_size, (int, np.integer)) or isinstance(block_size, bool) or block_size < 1:
            raise ValueError(f"CharDataset: block_size must be a positive integer, got {block_size!r}")
        self.block_size = int(block_size)
        vocab = sorted(set(text)) if vocab is None else list(vocab)
        if len(set(vocab)) != len(vocab) or not all(isinstance(c, str) and len(c) == 1 for c in vocab):
            raise ValueError("CharDataset: vocab must be distinct single characters")
        self.vocab = vocab
        self.stoi = {c: i for i, c in enumerate(vocab)}
        self.itos = dict(enumerate(vocab))
        codes = np.array([ord(c) for c in vocab], dtype=np.int64)
        # code point -> id; -1 for characters outside the vocabulary (the last entry covers all above)
        self._lut = np.full(int(codes.max(initial=0)) + 2, -1, dtype=np.int32)
        self._lut[codes] = np.arange(len(vocab))
        self._chars = np.array(vocab if vocab else [""])
        self._set_data(self._encode(text))

    def _set_data(self, ids):
        if len(ids) <= self.block_size:
            raise ValueError(f"CharDataset: {len(ids)} characters make no window of block_size {self.block_size} "
                             "plus its target")
        self.data = ids.astype(np.uint8 if len(self.vocab) <= 256 else np.int32)

    @property
    def vocab_size(self):
        return len(self.vocab)

    def _encode(self, text):
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        ids = np.take(self._lut, codes, mode="clip")
        if (ids < 0).any():
            unknown = sorted({chr(c) for c in codes[ids < 0].tolist()})
            raise ValueError(f"CharDataset: characters not in the vocabulary: {unknown[:20]!r}")
        return ids

    def encode(self, s):
        """The ids of the characters of s (ValueError naming any not in the vocabulary)."""
        return self._encode(s).tolist()

    def decode(self, ids):
        """The string of a sequence of ids (a list, NumPy array or Lepton tensor)."""
        if isinstance(ids, _C.Tensor):
            ids = ids.cpu().numpy()
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        bad = (ids < 0) | (ids >= len(self.vocab))
        if bad.any():
            raise ValueError(f"CharDataset.decode: ids {sorted(set(ids[bad].tolist()))[:20]} are outside the "
                             f"vocabulary of {len(self.vocab)}")
        return "".join(self._chars[ids].tolist())

    def __len__(self):
        return len(self.data) - self.block_size

    def _windows(self, starts):
        w = self.data[starts[..., None] + np.arange(self.block_size + 1)].astype(np.int64)
        return _C.from_numpy(np.ascontiguousarray(w[..., :-1])), _C.from_numpy(np.ascontiguousarray(w[..., 1:]))

    def __getitem__(self, index):
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"CharDataset: index {index} out of range for {n} windows")
        return self._windows(np.asarray(index % n, dtype=np.int64))

    def __getitems__(self, indices):
        """(x, y): int64 tensors [len(indices), block_size]."""
        idx = np.asarray(indices, dtype=np.int64)
        n = len(self)
        if idx.size and (idx.min() < -n or idx.max() >= n):
            raise IndexError(f"CharDataset: indices out of range for {n} windows")
        return self._windows(idx % n if n else idx)

    def split(self, val_fraction=0.1):
        """(train, val) CharDatasets over the first and last parts of the text, sharing the vocabulary."""
        if not 0 < val_fraction < 1:
            raise ValueError(f"CharDataset.split: val_fraction must be in (0, 1), got {val_fraction}")
        cut = int(len(self.data) * (1 - val_fraction))
        return self._with_data(self.data[:cut]), self._with_data(self.data[cut:])

    def _with_data(self, ids):
        part = object.__new__(CharDataset)
        part.__dict__.update(self.__dict__)
        part._set_data(ids)
        return part

    def random_batch(self, batch_size, rng):
        """(x, y) int64 [batch_size, block_size] at random offsets drawn from `rng` (a NumPy
        Generator or a seed), as nanoGPT's get_batch."""
        rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        return self.__getitems__(rng.integers(0, len(self), size=int(batch_size)))

    def __repr__(self):
        return f"CharDataset({len(self.data)} characters, vocab {len(self.vocab)}, block_size {self.block_size})"
