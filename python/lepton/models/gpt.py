"""CharGPT: a small GPT (nanoGPT's architecture) for character-level language modelling.

Token and learned position embeddings, n_layer pre-norm GPTBlocks, a final LayerNorm and a linear
head to vocabulary logits. The head shares its weight with the token embedding by default
(tie_weights=True, as GPT-2 and nanoGPT do). Initialisation is nanoGPT's: N(0, 0.02) for linear and
embedding weights, zero biases, and N(0, 0.02/√(2·n_layer)) for the projections that write into
the residual stream (attn.c_proj, mlp.c_proj), so its variance does not grow with depth.
"""

import math

import numpy as np

from lepton import _C, nn
from lepton.autograd import no_grad
from lepton.utils.checkpoint import checkpoint


class CharGPT(nn.Module):
    def __init__(self, vocab_size, n_layer=4, n_head=4, n_embd=128, block_size=64, dropout=0.0, bias=True,
                 tie_weights=True, checkpoint_activations=False):
        super().__init__()
        for name, value in (("vocab_size", vocab_size), ("n_layer", n_layer), ("n_head", n_head),
                            ("n_embd", n_embd), ("block_size", block_size)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"CharGPT: {name} must be an integer >= 1, got {value!r}")
        self.vocab_size, self.block_size = vocab_size, block_size
        self.checkpoint_activations = checkpoint_activations  # blocks recompute in backward: less memory
        self.wte = nn.Embedding(vocab_size, n_embd)
        self.wpe = nn.Embedding(block_size, n_embd)
        self.drop = nn.Dropout(dropout)
        self.h = nn.ModuleList([nn.GPTBlock(n_embd, n_head, dropout, bias) for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(n_embd, bias=bias)
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
        if tie_weights:
            self.lm_head.weight = self.wte.weight
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * n_layer))

    @staticmethod
    def _init_weights(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, 0.0, 0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, idx):
        """idx [B, T] int64 token ids, T <= block_size -> logits [B, T, vocab_size]."""
        if not isinstance(idx, _C.Tensor) or idx.dtype != _C.dtype.int64 or idx.dim() != 2:
            got = f"{idx.dtype} tensor of shape {tuple(idx.shape)}" if isinstance(idx, _C.Tensor) else \
                type(idx).__name__
            raise TypeError(f"CharGPT: idx must be a [B, T] int64 tensor, got {got}")
        time = idx.shape[1]
        if time > self.block_size:
            raise ValueError(f"CharGPT: cannot forward a sequence of length {time}, block_size is {self.block_size}")
        pos = _C.arange(time, device=idx.device)
        x = self.drop(self.wte(idx) + self.wpe(pos))
        recompute = self.checkpoint_activations and self.training and _C.is_grad_enabled()
        for block in self.h:
            x = checkpoint(block, x, use_reentrant=False) if recompute else block(x)
        return self.lm_head(self.ln_f(x))

    @no_grad()
    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None):
        """Appends max_new_tokens sampled tokens to idx [B, T] (the context is cropped to the last
        block_size tokens); draws come from lepton's RNG, so lepton.manual_seed makes them reproducible."""
        if temperature <= 0:
            raise ValueError(f"CharGPT.generate: temperature must be > 0, got {temperature}")
        if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
            raise ValueError(f"CharGPT.generate: top_k must be a positive integer or None, got {top_k!r}")
        was_training = self.training
        self.eval()
        try:
            for _ in range(max_new_tokens):
                logits = self(idx[:, -self.block_size:])[:, -1, :] / temperature
                if top_k is not None and top_k < self.vocab_size:
                    kth = np.partition(logits.numpy(), -top_k, axis=-1)[:, -top_k]
                    logits = _C.where(logits < _C.from_numpy(kth[:, None].copy()), float("-inf"), logits)
                idx = _C.cat([idx, _sample(logits)], 1)
        finally:
            self.train(was_training)
        return idx


def _sample(logits):
    """One token per row of logits [B, V] drawn from softmax(logits), as [B, 1] int64.

    Gumbel-max: argmax(logits + G) with G = -log(-log U), U uniform from lepton's RNG, is an exact
    draw from the categorical distribution (lepton has no multinomial)."""
    u = _C.rand(logits.shape, dtype=logits.dtype, device=logits.device)
    return (logits - (-u.log()).log()).argmax(1, keepdim=True)
