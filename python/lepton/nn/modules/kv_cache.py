"""KVCache: the keys and values an attention layer has seen, so that generating token n+1 attends
to the n earlier ones without recomputing their projections.

Buffers [B, H, max_length, D] are allocated at the first append, in the keys' dtype and device;
append returns views of the filled prefix (no copy: scaled_dot_product_attention reads strided
keys and values). One KVCache per attention layer; reset() to start a new sequence.
"""

from lepton import _C
from lepton.autograd import no_grad

__all__ = ["KVCache", "cache_mask"]


class KVCache:
    def __init__(self, max_length):
        if not isinstance(max_length, int) or max_length < 1:
            raise ValueError(f"KVCache: max_length must be a positive integer, got {max_length!r}")
        self.max_length, self.length = max_length, 0
        self.keys = self.values = None

    def append(self, k, v):
        """Adds k, v [B, H, T, D] after the cached positions; returns all keys and values so far."""
        batch, heads, new, _ = k.shape
        if self.keys is None:
            self.keys = _C.empty((batch, heads, self.max_length, k.shape[3]), dtype=k.dtype, device=k.device)
            self.values = _C.empty((batch, heads, self.max_length, v.shape[3]), dtype=v.dtype, device=v.device)
        elif (batch, heads) != tuple(self.keys.shape[:2]) or k.dtype != self.keys.dtype:
            raise ValueError(f"KVCache: got keys {k.dtype} {tuple(k.shape)} for a cache of {self.keys.dtype} "
                             f"[{batch}, {heads}, ...] entries; reset() it for a new batch")
        end = self.length + new
        if end > self.max_length:
            raise ValueError(f"KVCache: {end} positions do not fit its max_length {self.max_length}")
        with no_grad():  # (generation: the cache holds values, not history)
            self.keys[:, :, self.length:end] = k
            self.values[:, :, self.length:end] = v
        self.length = end
        return self.keys[:, :, :end], self.values[:, :, :end]

    def reset(self):
        self.length = 0


def cache_mask(past, new, device):
    """The causal mask of `new` queries after `past` cached positions: query i (position past + i)
    sees keys 0..past+i. None when plain attention is right (one query, or nothing cached)."""
    if new == 1 or past == 0:
        return None
    rows = _C.arange(new, device=device).reshape([new, 1]) + past
    return _C.arange(past + new, device=device).reshape([1, past + new]) <= rows
