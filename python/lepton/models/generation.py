"""Sampling from decoder language models: temperature, top-k, top-p (nucleus), with a KV cache.

A model that generates has block_size, new_caches() (one nn.KVCache per attention layer) and
forward(idx, caches) taking the positions after those cached. While the sequence fits block_size
each step feeds one token through the cached layers; past it the context window slides, so every
step re-encodes the last block_size tokens (learned absolute positions shift): the same tokens
as generating without a cache, only faster while the window fills.
"""

import math

from lepton import _C

__all__ = ["sample_next", "stream"]


def check_sampling(temperature, top_k, top_p):
    if not isinstance(temperature, (int, float)) or not temperature > 0 or not math.isfinite(temperature):
        raise ValueError(f"generate: temperature must be a finite number > 0, got {temperature!r}")
    if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1):
        raise ValueError(f"generate: top_k must be a positive integer or None, got {top_k!r}")
    if top_p is not None and (not isinstance(top_p, (int, float)) or not 0 < top_p <= 1):
        raise ValueError(f"generate: top_p must be in (0, 1] or None, got {top_p!r}")


def sample_next(logits, temperature=1.0, top_k=None, top_p=None):
    """One token id per row of logits [B, V], as [B, 1] int64: softmax(logits / temperature)
    restricted to the top_k likeliest tokens and then to the smallest set whose probability
    reaches top_p (the likeliest token always stays)."""
    logits = logits / temperature
    vocab = logits.shape[-1]
    if top_k is not None and top_k < vocab:
        kth = logits.topk(top_k, dim=-1)[0][:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1:
        ordered, order = logits.sort(dim=-1, descending=True)
        probs = ordered.softmax(-1)
        drop = (probs.cumsum(-1) - probs) >= top_p  # the mass before a token already reaches top_p
        logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    # Gumbel-max: argmax(logits + G), G = -log(-log U), is an exact draw from softmax(logits).
    u = _C.rand(tuple(logits.shape), dtype=logits.dtype, device=logits.device)
    return (logits - (-u.log()).log()).argmax(-1, keepdim=True)


def stream(model, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None, use_cache=True):
    """Yields max_new_tokens sampled tokens, each [B, 1] int64, continuing idx [B, T]."""
    check_sampling(temperature, top_k, top_p)
    window = model.block_size
    caches = model.new_caches() if use_cache else None
    pending = idx[:, -window:]  # what the cache has not seen yet
    seq = idx
    for _ in range(max_new_tokens):
        if caches is not None and seq.shape[1] <= window:
            logits = model(pending, caches)[:, -1, :]
        else:  # (no cache, or the window slides)
            logits = model(seq[:, -window:])[:, -1, :]
        token = sample_next(logits, temperature, top_k, top_p)
        seq = _C.cat([seq, token], 1)
        pending = token
        yield token
