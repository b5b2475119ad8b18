"""CharGPT: a small GPT (nanoGPT's architecture) for character-level language modelling.

Token and learned position embeddings, n_layer pre-norm GPTBlocks, a final LayerNorm and a linear
head to vocabulary logits. The head shares its weight with the token embedding by default
(tie_weights=True, as GPT-2 and nanoGPT do). Initialisation is nanoGPT's: N(0, 0.02) for linear and
embedding weights, zero biases, and N(0, 0.02/√(2·n_layer)) for the projections that write into
the residual stream (attn.c_proj, mlp.c_proj), so its variance does not grow with depth.
"""

import math


from lepton import _C, nn
from lepton.autograd import no_grad
from lepton.models import generation
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

    def forward(self, idx, caches=None):
        """idx [B, T] int64 token ids, T <= block_size -> logits [B, T, vocab_size]. With caches (from
        new_caches()), idx holds the positions after those already cached."""
        if not isinstance(idx, _C.Tensor) or idx.dtype != _C.dtype.int64 or idx.dim() != 2:
            got = f"{idx.dtype} tensor of shape {tuple(idx.shape)}" if isinstance(idx, _C.Tensor) else \
                type(idx).__name__
            raise TypeError(f"CharGPT: idx must be a [B, T] int64 tensor, got {got}")
        start, time = (caches[0].length if caches else 0), idx.shape[1]
        if start + time > self.block_size:
            raise ValueError(f"CharGPT: cannot forward a sequence of length {start + time}, block_size is "
                             f"{self.block_size}")
        pos = _C.arange(start, start + time, device=idx.device)
        x = self.drop(self.wte(idx) + self.wpe(pos))
        recompute = self.checkpoint_activations and self.training and _C.is_grad_enabled() and not caches
        for n, block in enumerate(self.h):
            if recompute:
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x, caches[n] if caches else None)
        return self.lm_head(self.ln_f(x))

    def new_caches(self):
        """One empty KVCache per block, for forward(idx, caches) while generating."""
        return [nn.KVCache(self.block_size) for _ in self.h]

    @no_grad()
    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None, use_cache=True):
        """Appends max_new_tokens sampled tokens to idx [B, T] (models/generation.py: temperature, top-k,
        top-p, KV cache; the context is the last block_size tokens); draws come from lepton's RNG, so
        lepton.manual_seed makes them reproducible."""
        return _C.cat([idx, *self.stream(idx, max_new_tokens, temperature, top_k, top_p, use_cache)], 1)

    def stream(self, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None, use_cache=True):
        """generate, one [B, 1] token at a time as each is drawn (in eval mode, without grad)."""
        was_training = self.training
        self.eval()
        try:
            with no_grad():
                yield from generation.stream(self, idx, max_new_tokens, temperature, top_k, top_p, use_cache)
        finally:
            self.train(was_training)
