"""TransformerEncoderLayer / TransformerEncoder (torch's structure and parameter names) and a GPT block.

TransformerEncoderLayer is torch's: MultiheadAttention, a two-Linear feed-forward, two LayerNorms,
post-norm by default or pre-norm with norm_first=True. GPTBlock is the pre-norm causal block of
GPT-2/nanoGPT (x + attn(ln_1(x)), x + mlp(ln_2(x)), GELU MLP of 4x width), calling the fused
scaled_dot_product_attention kernel directly with is_causal=True.
"""

import copy

from lepton import _C
from lepton.nn import functional as F
from lepton.nn.modules.activation import GELU
from lepton.nn.modules.attention import MultiheadAttention
from lepton.nn.modules.containers import ModuleList
from lepton.nn.modules.dropout import Dropout
from lepton.nn.modules.linear import Linear
from lepton.nn.modules.module import Module
from lepton.nn.modules.normalization import LayerNorm
from lepton.nn.parameter import Parameter

_ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu}


def causal_mask(size, dtype=None, device=None):
    """A [size, size] float mask, -inf above the diagonal and 0 elsewhere (torch's
    nn.Transformer.generate_square_subsequent_mask): added to attention scores, it hides the future."""
    positions = _C.arange(size, device=device)
    future = positions.unsqueeze(0) > positions.unsqueeze(1)
    return _C.where(future, float("-inf"), _C.zeros((size, size), dtype=dtype, device=device))


def _clone(module):
    """A deep copy with fresh parameter and buffer storage (Tensor itself does not implement __deepcopy__)."""
    memo = {id(p): Parameter(p.detach().clone(), p.requires_grad) for p in module.parameters()}
    memo.update({id(b): b.clone() for b in module.buffers()})
    return copy.deepcopy(module, memo)


class TransformerEncoderLayer(Module):
    """Self-attention then feed-forward, each with dropout, a residual connection and a LayerNorm
    (after the residual by default; before the sublayer with norm_first=True)."""

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu", layer_norm_eps=1e-5,
                 batch_first=False, norm_first=False, bias=True, device=None, dtype=None):
        super().__init__()
        if isinstance(activation, str):
            if activation not in _ACTIVATIONS:
                raise ValueError(f"TransformerEncoderLayer: activation should be relu/gelu, not {activation!r}")
            activation = _ACTIVATIONS[activation]
        elif not callable(activation):
            raise TypeError(f"TransformerEncoderLayer: activation must be 'relu', 'gelu' or a callable, "
                            f"got {type(activation).__name__}")
        factory = dict(device=device, dtype=dtype)
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first,
                                            **factory)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, **factory)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, **factory)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **factory)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **factory)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.activation = activation
        self.batch_first = batch_first

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False):
        """src [B, T, E] (batch_first) or [T, B, E]; src_mask [T, T] or [B·nhead, T, T] (bool: True hides;
        float: added); src_key_padding_mask [B, T] (True hides a key); is_causal with no src_mask hides the
        future (torch requires the mask; here the hint alone is enough)."""
        if is_causal and src_mask is None:
            length = src.shape[1] if self.batch_first and src.dim() == 3 else src.shape[0]
            src_mask = causal_mask(length, src.dtype, src.device)
        x = src
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            x = x + self._ff_block(self.norm2(x))
        else:
            x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal))
            x = self.norm2(x + self._ff_block(x))
        return x

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal):
        x = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask, need_weights=False,
                           is_causal=is_causal)[0]
        return self.dropout1(x)

    def _ff_block(self, x):
        return self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(x)))))


class TransformerEncoder(Module):
    """num_layers independent copies of encoder_layer applied in turn, then an optional final norm."""

    def __init__(self, encoder_layer, num_layers, norm=None, enable_nested_tensor=True, mask_check=True):
        super().__init__()
        if not isinstance(encoder_layer, Module):
            raise TypeError(f"TransformerEncoder: encoder_layer must be a Module, got {type(encoder_layer).__name__}")
        if not isinstance(num_layers, int) or num_layers < 1:
            raise ValueError(f"TransformerEncoder: num_layers must be an integer >= 1, got {num_layers!r}")
        # enable_nested_tensor and mask_check select torch's sparse fast path; accepted for compatibility
        self.layers = ModuleList([_clone(encoder_layer) for _ in range(num_layers)])
        self.num_layers = num_layers
        self.norm = norm

    def forward(self, src, mask=None, src_key_padding_mask=None, is_causal=None):
        output = src
        for layer in self.layers:
            output = layer(output, src_mask=mask, src_key_padding_mask=src_key_padding_mask, is_causal=bool(is_causal))
        return output if self.norm is None else self.norm(output)


class CausalSelfAttention(Module):
    """Multi-head causal self-attention with one fused q/k/v projection (c_attn) and an output projection
    (c_proj), named as in GPT-2."""

    def __init__(self, n_embd, n_head, dropout=0.0, bias=True):
        super().__init__()
        if n_embd % n_head:
            raise ValueError(f"CausalSelfAttention: n_embd ({n_embd}) must be divisible by n_head ({n_head})")
        self.n_embd, self.n_head, self.dropout = n_embd, n_head, dropout
        self.c_attn = Linear(n_embd, 3 * n_embd, bias=bias)
        self.c_proj = Linear(n_embd, n_embd, bias=bias)
        self.resid_dropout = Dropout(dropout)

    def forward(self, x):
        batch, time, channels = x.shape
        heads = [t.view([batch, time, self.n_head, channels // self.n_head]).transpose(1, 2)
                 for t in self.c_attn(x).split(self.n_embd, 2)]
        y = F.scaled_dot_product_attention(*heads, dropout_p=self.dropout if self.training else 0.0, is_causal=True)
        return self.resid_dropout(self.c_proj(y.transpose(1, 2).reshape([batch, time, channels])))


class GPTMLP(Module):
    """Linear to 4x width (c_fc), GELU, Linear back (c_proj), dropout."""

    def __init__(self, n_embd, dropout=0.0, bias=True):
        super().__init__()
        self.c_fc = Linear(n_embd, 4 * n_embd, bias=bias)
        self.gelu = GELU()
        self.c_proj = Linear(4 * n_embd, n_embd, bias=bias)
        self.dropout = Dropout(dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class GPTBlock(Module):
    """Pre-norm GPT block: x + attn(ln_1(x)) (causal), then x + mlp(ln_2(x)) with a 4x-wide GELU MLP.

    Input and output are [B, T, n_embd]."""

    def __init__(self, n_embd, n_head, dropout=0.0, bias=True):
        super().__init__()
        self.ln_1 = LayerNorm(n_embd, bias=bias)
        self.attn = CausalSelfAttention(n_embd, n_head, dropout, bias)
        self.ln_2 = LayerNorm(n_embd, bias=bias)
        self.mlp = GPTMLP(n_embd, dropout, bias)

    def forward(self, x):
        if x.dim() != 3 or x.shape[2] != self.attn.n_embd:
            raise ValueError(f"GPTBlock: expected input [B, T, {self.attn.n_embd}], got {tuple(x.shape)}")
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))
