"""MultiheadAttention with torch's parameters, initialisation, masks and outputs.

Heads are views: the projections are split with view/permute into [batch, heads, seq, head_dim]
and handed to the fused scaled_dot_product_attention, which reads them through their strides, so
need_weights=False never copies q, k or v. need_weights=True computes the weights explicitly
(as torch does) to return them.
"""

import math

from lepton import _C
from lepton.nn import functional as F, init
from lepton.nn.modules.linear import NonDynamicallyQuantizableLinear
from lepton.nn.modules.module import Module
from lepton.nn.parameter import Parameter


class MultiheadAttention(Module):
    """torch.nn.MultiheadAttention: num_heads heads of embed_dim // num_heads dims over query [L, N, E]
    (or [N, L, E] with batch_first, [L, E] unbatched) and key/value [S, N, kdim/vdim].

    forward returns (output, weights): weights [N, L, S] averaged over heads (or [N, H, L, S]) when
    need_weights, else None. Masks follow torch: key_padding_mask [N, S] and attn_mask [L, S] or
    [N·H, L, S] are bool (True = may NOT attend) or float (added to the scores); is_causal is a
    hint that attn_mask is the causal mask.
    """

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, add_bias_kv=False, add_zero_attn=False,
                 kdim=None, vdim=None, batch_first=False, device=None, dtype=None):
        if embed_dim <= 0 or num_heads <= 0:
            raise ValueError(f"MultiheadAttention: embed_dim and num_heads must be positive, got {embed_dim} "
                             f"and {num_heads}")
        if embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        super().__init__()
        factory = dict(device=device, dtype=dtype)
        self.embed_dim, self.num_heads, self.head_dim = embed_dim, num_heads, embed_dim // num_heads
        self.kdim = embed_dim if kdim is None else kdim
        self.vdim = embed_dim if vdim is None else vdim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.dropout, self.batch_first = dropout, batch_first
        if self._qkv_same_embed_dim:
            self.in_proj_weight = Parameter(_C.empty((3 * embed_dim, embed_dim), **factory))
            for name in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
                self.register_parameter(name, None)
        else:
            self.q_proj_weight = Parameter(_C.empty((embed_dim, embed_dim), **factory))
            self.k_proj_weight = Parameter(_C.empty((embed_dim, self.kdim), **factory))
            self.v_proj_weight = Parameter(_C.empty((embed_dim, self.vdim), **factory))
            self.register_parameter("in_proj_weight", None)
        if bias:
            self.in_proj_bias = Parameter(_C.empty((3 * embed_dim,), **factory))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = NonDynamicallyQuantizableLinear(embed_dim, embed_dim, bias=bias, **factory)
        if add_bias_kv:
            self.bias_k = Parameter(_C.empty((1, 1, embed_dim), **factory))
            self.bias_v = Parameter(_C.empty((1, 1, embed_dim), **factory))
        else:
            self.bias_k = self.bias_v = None
        self.add_zero_attn = add_zero_attn
        self._reset_parameters()

    def _reset_parameters(self):
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight)
        else:
            for w in (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight):
                init.xavier_uniform_(w)
        if self.in_proj_bias is not None:
            init.zeros_(self.in_proj_bias)
            init.zeros_(self.out_proj.bias)
        for b in (self.bias_k, self.bias_v):
            if b is not None:
                init.xavier_normal_(b)

    def extra_repr(self):
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, batch_first={self.batch_first}"

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False, cache=None):
        """torch's MultiheadAttention.forward; Lepton adds cache, an nn.KVCache: key and value are then
        the positions after those cached (generation), is_causal=True needs no attn_mask, and an
        attn_mask covers the cached keys too ([L, cached + S])."""
        batched = self._check_shapes(query, key, value, key_padding_mask, attn_mask)
        bdim = 0 if self.batch_first else 1  # the batch dim of 3-D inputs
        if not batched:
            query, key, value = query.unsqueeze(bdim), key.unsqueeze(bdim), value.unsqueeze(bdim)
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.unsqueeze(0)
        out, weights = self._attend(query, key, value, bdim, key_padding_mask, need_weights, attn_mask, is_causal,
                                    cache)
        if weights is not None and average_attn_weights:
            weights = weights.mean(1)
        if not batched:
            out = out.squeeze(bdim)
            weights = None if weights is None else weights.squeeze(0)
        return out, weights

    def _check_shapes(self, query, key, value, key_padding_mask, attn_mask):
        """True for batched (3-D) inputs, False for unbatched (2-D); ValueError for anything else."""
        batched = query.dim() == 3
        shapes = f"query {list(query.shape)}, key {list(key.shape)}, value {list(value.shape)}"
        if query.dim() not in (2, 3) or key.dim() != query.dim() or value.dim() != query.dim():
            raise ValueError(f"MultiheadAttention: expected 3-D (batched) or 2-D (unbatched) query, key and value, "
                             f"got {shapes}")
        if query.shape[-1] != self.embed_dim or key.shape[-1] != self.kdim or value.shape[-1] != self.vdim:
            raise ValueError(f"MultiheadAttention: expected feature sizes {self.embed_dim}, {self.kdim} and "
                             f"{self.vdim}, got {shapes}")
        if key.shape[:-1] != value.shape[:-1]:
            raise ValueError(f"MultiheadAttention: key and value must agree in all dims but the last, got {shapes}")
        bdim = 0 if self.batch_first else 1
        if batched and query.shape[bdim] != key.shape[bdim]:
            raise ValueError(f"MultiheadAttention: query and key must have the same batch size, got {shapes}")
        if key_padding_mask is not None and key_padding_mask.dim() != (2 if batched else 1):
            raise ValueError(f"MultiheadAttention: key_padding_mask must be {'2' if batched else '1'}-D, got "
                             f"{list(key_padding_mask.shape)}")
        if attn_mask is not None and attn_mask.dim() not in (2, 3):
            raise ValueError(f"MultiheadAttention: attn_mask must be 2-D or 3-D, got {list(attn_mask.shape)}")
        return batched

    def _float_mask(self, mask, name, dtype):
        """A bool mask (True = may not attend) as 0/-inf of dtype; a float mask as it is."""
        if mask is None:
            return None
        if mask.dtype == _C.dtype.bool:
            return _C.where(mask, float("-inf"), _C.zeros(tuple(mask.shape), dtype=dtype, device=mask.device))
        if mask.dtype != dtype:
            raise TypeError(f"MultiheadAttention: {name} must be bool or {dtype.name}, got {mask.dtype.name}")
        return mask

    def _project(self, query, key, value):
        """q, k, v projections in the input layout; self-attention takes one fused GEMM."""
        E = self.embed_dim
        b = self.in_proj_bias
        bq, bk, bv = (None, None, None) if b is None else (b[:E], b[E:2 * E], b[2 * E:])
        if not self._qkv_same_embed_dim:
            return (F.linear(query, self.q_proj_weight, bq), F.linear(key, self.k_proj_weight, bk),
                    F.linear(value, self.v_proj_weight, bv))
        w = self.in_proj_weight
        if query is key and key is value:
            return F.linear(query, w, b).chunk(3, -1)
        if key is value:
            k, v = F.linear(key, w[E:], None if b is None else b[E:]).chunk(2, -1)
            return F.linear(query, w[:E], bq), k, v
        return F.linear(query, w[:E], bq), F.linear(key, w[E:2 * E], bk), F.linear(value, w[2 * E:], bv)

    def _attend(self, query, key, value, bdim, key_padding_mask, need_weights, attn_mask, is_causal, cache):
        """query [L, N, E] or [N, L, E] (bdim 1 or 0) -> (output like query, weights [N, H, L, S] or None)."""
        H, hd, E = self.num_heads, self.head_dim, self.embed_dim
        sdim = 1 - bdim
        L, N, S = query.shape[sdim], query.shape[bdim], key.shape[sdim]
        dtype = query.dtype
        past = 0
        if cache is not None:
            if self.bias_k is not None or self.add_zero_attn or key_padding_mask is not None:
                raise NotImplementedError("MultiheadAttention: a cache does not combine with add_bias_kv, "
                                          "add_zero_attn or key_padding_mask")
            past = cache.length
            if is_causal and attn_mask is None:  # query i sits at position past + i
                rows = _C.arange(L, device=query.device).reshape([L, 1]) + past
                attn_mask = _C.arange(past + S, device=query.device).reshape([1, past + S]) > rows
                is_causal = False
            S += past
        if key_padding_mask is not None and tuple(key_padding_mask.shape) != (N, S):
            raise ValueError(f"MultiheadAttention: key_padding_mask of shape {list(key_padding_mask.shape)}, "
                             f"expected {[N, S]} (batch, key length)")
        key_padding_mask = self._float_mask(key_padding_mask, "key_padding_mask", dtype)
        if is_causal and attn_mask is None:
            raise ValueError("MultiheadAttention: is_causal is a hint that attn_mask is the causal mask; "
                             "pass the mask too")
        if is_causal and key_padding_mask is None and not need_weights:
            attn_mask = None  # the fused kernel masks causally itself
        else:
            attn_mask = self._float_mask(attn_mask, "attn_mask", dtype)
            is_causal = False
        if attn_mask is not None:
            want = (L, S) if attn_mask.dim() == 2 else (N * H, L, S)
            if tuple(attn_mask.shape) != want:
                raise ValueError(f"MultiheadAttention: attn_mask of shape {list(attn_mask.shape)}, expected "
                                 f"{list(want[-2:])} or {[N * H, L, S]}")
            attn_mask = attn_mask.reshape(1, 1, L, S) if attn_mask.dim() == 2 else attn_mask.reshape(N, H, L, S)

        q, k, v = self._project(query, key, value)
        if self.bias_k is not None:
            shape = (1, N, E) if bdim == 1 else (N, 1, E)
            k = _C.cat([k, self.bias_k.expand(*shape)], sdim)
            v = _C.cat([v, self.bias_v.expand(*shape)], sdim)
            attn_mask, key_padding_mask = _pad_key(attn_mask), _pad_key(key_padding_mask)
            S += 1
        # [N, H, seq, hd] views of the projections
        order = (1, 2, 0, 3) if bdim == 1 else (0, 2, 1, 3)
        q, k, v = (x.reshape(*x.shape[:2], H, hd).permute(*order) for x in (q, k, v))
        if cache is not None:
            k, v = cache.append(k, v)
        if self.add_zero_attn:
            zeros = _C.zeros((N, H, 1, hd), dtype=dtype, device=k.device)
            k, v = _C.cat([k, zeros], 2), _C.cat([v, zeros], 2)
            attn_mask, key_padding_mask = _pad_key(attn_mask), _pad_key(key_padding_mask)
            S += 1
        if key_padding_mask is not None:
            kpm = key_padding_mask.reshape(N, 1, 1, S)
            attn_mask = kpm if attn_mask is None else attn_mask + kpm
        dropout_p = self.dropout if self.training else 0.0

        weights = None
        if need_weights:
            scores = (q * math.sqrt(1.0 / hd)) @ k.transpose(-2, -1)
            if attn_mask is not None:
                scores = scores + attn_mask
            weights = F.softmax(scores, -1)
            if dropout_p > 0:
                weights = F.dropout(weights, p=dropout_p)
            out = weights @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask, dropout_p, is_causal)
        # [N, H, L, hd] -> the input layout [L, N, E] or [N, L, E]
        out = out.permute(*((2, 0, 1, 3) if bdim == 1 else (0, 2, 1, 3))).reshape(*query.shape[:2], E)
        return self.out_proj(out), weights


def _pad_key(mask):
    """The mask with one more key (a zero column), or None."""
    if mask is None:
        return None
    return _C.cat([mask, _C.zeros((*mask.shape[:-1], 1), dtype=mask.dtype, device=mask.device)], -1)
