"""torch's Transformer family with its structure and parameter names (so torch state_dicts load):
TransformerEncoderLayer / TransformerEncoder, TransformerDecoderLayer / TransformerDecoder and the
encoder-decoder Transformer; and the GPT block.

The layers are MultiheadAttention, a two-Linear feed-forward and LayerNorms, post-norm by default or
pre-norm with norm_first=True. GPTBlock is the pre-norm causal block of GPT-2/nanoGPT (x + attn(ln_1(x)),
x + mlp(ln_2(x)), GELU MLP of 4x width), calling the fused scaled_dot_product_attention kernel directly
with is_causal=True.
"""

import copy

from lepton import _C
from lepton.autograd import no_grad
from lepton.nn import functional as F, init
from lepton.nn.modules.activation import GELU
from lepton.nn.modules.attention import MultiheadAttention
from lepton.nn.modules.containers import ModuleList
from lepton.nn.modules.dropout import Dropout
from lepton.nn.modules.kv_cache import cache_mask
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


def _detect_is_causal_mask(mask, is_causal, size):
    """torch's rule: an explicit is_causal stands; with None, a float mask equal to the causal mask of
    size counts as causal (so the fused kernel can mask by itself)."""
    if is_causal is not None or mask is None:
        return bool(is_causal)
    if mask.dtype == _C.dtype.bool or tuple(mask.shape) != (size, size):
        return False
    with no_grad():
        return bool((mask == causal_mask(size, mask.dtype, mask.device)).all().item())


def _seq_len(x, batch_first):
    return x.shape[1] if batch_first and x.dim() == 3 else x.shape[0]


def _clone(module):
    """A deep copy with fresh parameter and buffer storage (Tensor itself does not implement __deepcopy__)."""
    memo = {id(p): Parameter(p.detach().clone(), p.requires_grad) for p in module.parameters()}
    memo.update({id(b): b.clone() for b in module.buffers()})
    return copy.deepcopy(module, memo)


def _clones(name, layer, num_layers):
    if not isinstance(layer, Module):
        raise TypeError(f"{name}: the layer must be a Module, got {type(layer).__name__}")
    if not isinstance(num_layers, int) or num_layers < 1:
        raise ValueError(f"{name}: num_layers must be an integer >= 1, got {num_layers!r}")
    return ModuleList([_clone(layer) for _ in range(num_layers)])


def _activation(name, activation):
    if isinstance(activation, str):
        if activation not in _ACTIVATIONS:
            raise ValueError(f"{name}: activation should be relu/gelu, not {activation!r}")
        return _ACTIVATIONS[activation]
    if not callable(activation):
        raise TypeError(f"{name}: activation must be 'relu', 'gelu' or a callable, got {type(activation).__name__}")
    return activation


class _TransformerLayer(Module):
    """What the encoder and decoder layers share: the feed-forward block (linear1, dropout, linear2 and
    the activation) and the causal-hint handling. Submodules are registered in torch's order, so that
    parameters() and state_dict() list them as torch does."""

    def _add_feed_forward(self, d_model, dim_feedforward, dropout, bias, factory):
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, **factory)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, **factory)

    def _ff(self, x):
        return self.linear2(self.dropout(self.activation(self.linear1(x))))

    def _causal(self, x, mask, is_causal):
        """is_causal with no mask: the causal mask itself (torch requires it; here the hint alone is enough)."""
        if is_causal and mask is None:
            return causal_mask(_seq_len(x, self.batch_first), x.dtype, x.device)
        return mask


class TransformerEncoderLayer(_TransformerLayer):
    """Self-attention then feed-forward, each with dropout, a residual connection and a LayerNorm
    (after the residual by default; before the sublayer with norm_first=True)."""

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu", layer_norm_eps=1e-5,
                 batch_first=False, norm_first=False, bias=True, device=None, dtype=None):
        super().__init__()
        activation = _activation("TransformerEncoderLayer", activation)
        factory = dict(device=device, dtype=dtype)
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first,
                                            **factory)
        self._add_feed_forward(d_model, dim_feedforward, dropout, bias, factory)
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
        future."""
        src_mask = self._causal(src, src_mask, is_causal)
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
        return self.dropout2(self._ff(x))


class TransformerDecoderLayer(_TransformerLayer):
    """Self-attention over tgt, attention to the encoder's memory, then feed-forward; each with dropout,
    a residual connection and a LayerNorm (post-norm by default, pre-norm with norm_first=True)."""

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu", layer_norm_eps=1e-5,
                 batch_first=False, norm_first=False, bias=True, device=None, dtype=None):
        super().__init__()
        activation = _activation("TransformerDecoderLayer", activation)
        factory = dict(device=device, dtype=dtype)
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first,
                                            **factory)
        self.multihead_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first,
                                                 **factory)
        self._add_feed_forward(d_model, dim_feedforward, dropout, bias, factory)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **factory)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **factory)
        self.norm3 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **factory)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.dropout3 = Dropout(dropout)
        self.activation = activation
        self.batch_first = batch_first

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=False, memory_is_causal=False):
        """tgt [B, T, E] / [T, B, E] attends to itself (tgt_mask [T, T], tgt_is_causal) and to memory
        [B, S, E] / [S, B, E] (memory_mask [T, S]); key padding masks [B, T] and [B, S]."""
        tgt_mask = self._causal(tgt, tgt_mask, tgt_is_causal)
        x = tgt
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), tgt_mask, tgt_key_padding_mask, tgt_is_causal)
            x = x + self._mha_block(self.norm2(x), memory, memory_mask, memory_key_padding_mask, memory_is_causal)
            x = x + self._ff_block(self.norm3(x))
        else:
            x = self.norm1(x + self._sa_block(x, tgt_mask, tgt_key_padding_mask, tgt_is_causal))
            x = self.norm2(x + self._mha_block(x, memory, memory_mask, memory_key_padding_mask, memory_is_causal))
            x = self.norm3(x + self._ff_block(x))
        return x

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal):
        x = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask, need_weights=False,
                           is_causal=is_causal)[0]
        return self.dropout1(x)

    def _mha_block(self, x, memory, attn_mask, key_padding_mask, is_causal):
        x = self.multihead_attn(x, memory, memory, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                                need_weights=False, is_causal=is_causal)[0]
        return self.dropout2(x)

    def _ff_block(self, x):
        return self.dropout3(self._ff(x))


class TransformerEncoder(Module):
    """num_layers independent copies of encoder_layer applied in turn, then an optional final norm.

    enable_nested_tensor and mask_check choose torch's nested-tensor fast path for padded batches,
    which Lepton does not have; they are kept as attributes and change nothing."""

    def __init__(self, encoder_layer, num_layers, norm=None, enable_nested_tensor=True, mask_check=True):
        super().__init__()
        self.layers = _clones("TransformerEncoder", encoder_layer, num_layers)
        self.num_layers = num_layers
        self.norm = norm
        self.enable_nested_tensor, self.use_nested_tensor, self.mask_check = enable_nested_tensor, False, mask_check

    def forward(self, src, mask=None, src_key_padding_mask=None, is_causal=None):
        batch_first = getattr(self.layers[0], "batch_first", False)
        is_causal = _detect_is_causal_mask(mask, is_causal, _seq_len(src, batch_first))
        output = src
        for layer in self.layers:
            output = layer(output, src_mask=mask, src_key_padding_mask=src_key_padding_mask, is_causal=is_causal)
        return output if self.norm is None else self.norm(output)


class TransformerDecoder(Module):
    """num_layers independent copies of decoder_layer applied in turn to tgt (each attending to memory),
    then an optional final norm."""

    def __init__(self, decoder_layer, num_layers, norm=None):
        super().__init__()
        self.layers = _clones("TransformerDecoder", decoder_layer, num_layers)
        self.num_layers = num_layers
        self.norm = norm

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=None, memory_is_causal=False):
        batch_first = getattr(self.layers[0], "batch_first", False)
        tgt_is_causal = _detect_is_causal_mask(tgt_mask, tgt_is_causal, _seq_len(tgt, batch_first))
        output = tgt
        for layer in self.layers:
            output = layer(output, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                           tgt_key_padding_mask=tgt_key_padding_mask, memory_key_padding_mask=memory_key_padding_mask,
                           tgt_is_causal=tgt_is_causal, memory_is_causal=memory_is_causal)
        return output if self.norm is None else self.norm(output)


class Transformer(Module):
    """torch.nn.Transformer: an encoder of num_encoder_layers layers over src and a decoder of
    num_decoder_layers layers over tgt attending to the encoder's output, each stack ending in a
    LayerNorm (or custom_encoder / custom_decoder). Every weight matrix starts xavier-uniform, as in torch."""

    def __init__(self, d_model=512, nhead=8, num_encoder_layers=6, num_decoder_layers=6, dim_feedforward=2048,
                 dropout=0.1, activation="relu", custom_encoder=None, custom_decoder=None, layer_norm_eps=1e-5,
                 batch_first=False, norm_first=False, bias=True, device=None, dtype=None):
        super().__init__()
        factory = dict(device=device, dtype=dtype)
        layer_args = (d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps, batch_first, norm_first,
                      bias)
        if custom_encoder is not None:
            self.encoder = custom_encoder
        else:
            self.encoder = TransformerEncoder(TransformerEncoderLayer(*layer_args, **factory), num_encoder_layers,
                                              LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **factory))
        if custom_decoder is not None:
            self.decoder = custom_decoder
        else:
            self.decoder = TransformerDecoder(TransformerDecoderLayer(*layer_args, **factory), num_decoder_layers,
                                              LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **factory))
        self.d_model, self.nhead, self.batch_first = d_model, nhead, batch_first
        self._reset_parameters()

    def _reset_parameters(self):
        for p in self.parameters():
            if p.dim() > 1:
                init.xavier_uniform_(p)

    def forward(self, src, tgt, src_mask=None, tgt_mask=None, memory_mask=None, src_key_padding_mask=None,
                tgt_key_padding_mask=None, memory_key_padding_mask=None, src_is_causal=None, tgt_is_causal=None,
                memory_is_causal=False):
        """src [S, B, E] and tgt [T, B, E] ([B, S, E], [B, T, E] with batch_first; unbatched [S, E], [T, E])
        -> [T, B, E]; masks as in the encoder (src_*), the decoder's self-attention (tgt_*) and its
        attention to memory (memory_*)."""
        bdim = 0 if self.batch_first else 1
        if src.dim() == 3 and (tgt.dim() != 3 or src.shape[bdim] != tgt.shape[bdim]):
            raise ValueError(f"Transformer: the batch number of src and tgt must be equal, got src "
                             f"{tuple(src.shape)} and tgt {tuple(tgt.shape)} (batch_first={self.batch_first})")
        if src.shape[-1] != self.d_model or tgt.shape[-1] != self.d_model:
            raise ValueError(f"Transformer: the feature number of src and tgt must be equal to d_model "
                             f"({self.d_model}), got src {tuple(src.shape)} and tgt {tuple(tgt.shape)}")
        memory = self.encoder(src, mask=src_mask, src_key_padding_mask=src_key_padding_mask, is_causal=src_is_causal)
        return self.decoder(tgt, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                            tgt_key_padding_mask=tgt_key_padding_mask, memory_key_padding_mask=memory_key_padding_mask,
                            tgt_is_causal=tgt_is_causal, memory_is_causal=memory_is_causal)

    @staticmethod
    def generate_square_subsequent_mask(sz, device=None, dtype=None):
        """[sz, sz] float mask: -inf above the diagonal (the future), 0 elsewhere."""
        return causal_mask(sz, dtype, device)


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

    def forward(self, x, cache=None):
        """x [B, T, n_embd]; with a KVCache, x holds the T positions after those cached (generation)."""
        batch, time, channels = x.shape
        q, k, v = [t.view([batch, time, self.n_head, channels // self.n_head]).transpose(1, 2)
                   for t in self.c_attn(x).split(self.n_embd, 2)]
        dropout = self.dropout if self.training else 0.0
        if cache is None:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True)
        else:
            past = cache.length
            k, v = cache.append(k, v)
            mask = cache_mask(past, time, x.device)
            y = F.scaled_dot_product_attention(q, k, v, mask, dropout_p=dropout, is_causal=past == 0 and time > 1)
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

    def forward(self, x, cache=None):
        if x.dim() != 3 or x.shape[2] != self.attn.n_embd:
            raise ValueError(f"GPTBlock: expected input [B, T, {self.attn.n_embd}], got {tuple(x.shape)}")
        x = x + self.attn(self.ln_1(x), cache)
        return x + self.mlp(self.ln_2(x))
