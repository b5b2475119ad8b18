"""TransformerEncoderLayer / TransformerEncoder against torch with copied weights (forward and all
gradients, masks, pre/post norm), GPTBlock's causality, and CharGPT against bench/gpt_reference.py's
torch twin (which also checks that the benchmark compares like with like), its init, errors and sampling."""

import math
import os
import sys

import numpy as np
import pytest

import lepton
from lepton import nn
from lepton.nn import functional as F
from conftest import assert_close

torch = pytest.importorskip("torch")
if not all(hasattr(nn, n) for n in ("LayerNorm", "Embedding", "MultiheadAttention")) or \
        not hasattr(F, "scaled_dot_product_attention"):
    pytest.skip("lepton.nn lacks LayerNorm, Embedding, MultiheadAttention or scaled_dot_product_attention",
                allow_module_level=True)

from lepton.models import CharGPT  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "bench"))
from gpt_reference import torch_gpt  # noqa: E402

F64 = dict(rtol=1e-9, atol=1e-10)


def to_torch(t):
    return torch.from_numpy(np.array(t.detach().numpy(), copy=True))


def copy_weights(model, torch_model):
    names = [n for n, _ in model.named_parameters()]
    assert names == [n for n, _ in torch_model.named_parameters()]
    with torch.no_grad():
        for p, tp in zip(model.parameters(), torch_model.parameters()):
            assert tuple(p.shape) == tuple(tp.shape)
            tp.copy_(to_torch(p))
    return names


def check(model, torch_model, inputs, call, torch_call, seed=0, tol=F64, skip_rows=None):
    """Same weights (float64) and inputs: outputs, input gradients and every parameter's gradient."""
    model.double()
    torch_model.double()
    names = copy_weights(model, torch_model)
    xs = [lepton.tensor(a, requires_grad=a.dtype.kind == "f") for a in inputs]
    txs = [torch.tensor(a, requires_grad=a.dtype.kind == "f") for a in inputs]
    out, tout = call(model, *xs), torch_call(torch_model, *txs)
    assert_close(out, tout.detach(), **tol)
    g = np.random.default_rng(seed).standard_normal(tuple(tout.shape))
    (out * lepton.tensor(g)).sum().backward()
    tout.backward(torch.from_numpy(g))
    for x, tx in zip(xs, txs):
        if tx.requires_grad:
            assert_close(x.grad, tx.grad, **tol)
    for name, p, tp in zip(names, model.parameters(), torch_model.parameters()):
        assert p.grad is not None, f"no gradient reached {name}"
        assert_close(p.grad, tp.grad, **tol)


def sample(*shape, seed=1):
    return np.random.default_rng(seed).standard_normal(shape)


def causal(n, bool_mask=False):
    future = np.triu(np.ones((n, n), dtype=bool), 1)
    return future if bool_mask else np.where(future, -np.inf, 0.0)


# ---- TransformerEncoderLayer -----------------------------------------------------------------

LAYER_CONFIGS = {
    "post_norm": dict(),
    "pre_norm": dict(norm_first=True),
    "batch_first_gelu": dict(batch_first=True, activation="gelu"),
    "pre_norm_no_bias": dict(norm_first=True, bias=False, batch_first=True),
    "eps": dict(layer_norm_eps=1e-3),
}


@pytest.mark.parametrize("config", list(LAYER_CONFIGS))
@pytest.mark.parametrize("mask", ["none", "float", "bool", "padding", "float+padding"])
def test_encoder_layer_matches_torch(config, mask):
    kwargs = dict(LAYER_CONFIGS[config], dropout=0.0)
    batch_first = kwargs.get("batch_first", False)
    time, batch = 5, 3
    x = sample(batch, time, 12) if batch_first else sample(time, batch, 12)
    pad = np.zeros((batch, time), dtype=bool)
    pad[0, 3:] = True  # the first sequence has 2 padding positions; none is fully masked
    pad[2, 4] = True
    attn_mask = {"none": None, "float": causal(time), "bool": causal(time, True), "padding": None,
                 "float+padding": causal(time)}[mask]
    key_padding = pad if "padding" in mask else None
    extra = [a for a in (attn_mask, key_padding) if a is not None]

    def run(lib):
        def call(layer, x, *masks):
            masks = list(masks)
            src_mask = masks.pop(0) if attn_mask is not None else None
            return layer(x, src_mask=src_mask, src_key_padding_mask=masks.pop(0) if masks else None)
        return call

    check(nn.TransformerEncoderLayer(12, 3, dim_feedforward=20, **kwargs),
          torch.nn.TransformerEncoderLayer(12, 3, dim_feedforward=20, **kwargs), [x, *extra], run(lepton), run(torch))


def test_encoder_layer_callable_activation_matches_torch():
    x = sample(4, 2, 8)
    check(nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, activation=F.silu),
          torch.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, activation=torch.nn.functional.silu),
          [x], lambda m, x: m(x), lambda m, x: m(x))


def test_encoder_layer_parameter_names_match_torch():
    ours = {k: tuple(v.shape) for k, v in nn.TransformerEncoderLayer(16, 4, 32).state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in torch.nn.TransformerEncoderLayer(16, 4, 32).state_dict().items()}
    assert ours == theirs


def test_is_causal_alone_equals_the_causal_mask_and_hides_the_future():
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
    x = lepton.randn(2, 6, 8)
    a = layer(x, is_causal=True)
    b = layer(x, src_mask=lepton.tensor(causal(6)).float(), is_causal=True)
    assert_close(a, b.numpy(), rtol=1e-6, atol=1e-6)
    changed = x.numpy().copy()
    changed[:, 4:] += 5.0  # later positions must not affect earlier outputs
    c = layer(lepton.tensor(changed), is_causal=True)
    assert_close(c[:, :4], a[:, :4].numpy(), rtol=1e-5, atol=1e-6)
    assert not np.allclose(c[:, 4:].numpy(), a[:, 4:].numpy())


@pytest.mark.parametrize("batch_first", [False, True])
def test_unbatched_input_equals_a_batch_of_one(batch_first):
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=batch_first)
    x = lepton.randn(5, 8)
    one = layer(x.unsqueeze(0 if batch_first else 1), is_causal=True)
    assert_close(layer(x, is_causal=True), (one[0] if batch_first else one[:, 0]).numpy(), rtol=1e-6, atol=1e-6)


def test_dropout_only_in_training_and_eval_matches_torch():
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.3)
    tlayer = torch.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.3)
    copy_weights(layer, tlayer)
    layer.eval()
    tlayer.eval()
    x = sample(5, 3, 8).astype(np.float32)
    out = layer(lepton.tensor(x))
    assert_close(out, layer(lepton.tensor(x)).numpy(), rtol=0, atol=0)
    with torch.no_grad():
        assert_close(out, tlayer(torch.tensor(x)), rtol=1e-5, atol=1e-5)
    layer.train()
    assert not np.allclose(layer(lepton.tensor(x)).numpy(), out.numpy())


@pytest.mark.parametrize("make,exc,match", [
    (lambda: nn.TransformerEncoderLayer(8, 2, activation="swish"), ValueError, "relu/gelu"),
    (lambda: nn.TransformerEncoderLayer(8, 2, activation=3), TypeError, "callable"),
    (lambda: nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2), 0), ValueError, "num_layers"),
    (lambda: nn.TransformerEncoder("layer", 2), TypeError, "Module"),
])
def test_bad_constructor_arguments(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


# ---- TransformerEncoder --------------------------------------------------------------------

@pytest.mark.parametrize("with_norm", [False, True])
def test_encoder_matches_torch(with_norm):
    def make(ns, **kw):
        layer = ns.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True, norm_first=with_norm)
        return ns.TransformerEncoder(layer, 3, norm=ns.LayerNorm(8) if with_norm else None, **kw)

    model, tmodel = make(nn), make(torch.nn, enable_nested_tensor=False)
    for i, layer in enumerate(model.layers):  # independent copies: give each its own weights
        lepton.manual_seed(i)
        for p in layer.parameters():
            nn.init.normal_(p, 0.0, 0.3)
    pad = np.zeros((2, 5), dtype=bool)
    pad[1, 3:] = True
    check(model, tmodel, [sample(2, 5, 8), causal(5), pad],
          lambda m, x, mask, pad: m(x, mask=mask, src_key_padding_mask=pad),
          lambda m, x, mask, pad: m(x, mask=mask, src_key_padding_mask=pad))


def test_encoder_layers_are_independent_copies():
    layer = nn.TransformerEncoderLayer(8, 2, 16)
    encoder = nn.TransformerEncoder(layer, 2)
    a, b = encoder.layers[0].linear1.weight, encoder.layers[1].linear1.weight
    assert a is not b and a is not layer.linear1.weight
    assert_close(a, layer.linear1.weight.numpy(), rtol=0, atol=0)
    with lepton.no_grad():
        a.fill_(0.0)
    assert float(b.abs().sum()) > 0 and float(layer.linear1.weight.abs().sum()) > 0
    assert len(list(encoder.parameters())) == 2 * len(list(layer.parameters()))


# ---- GPTBlock and CharGPT ------------------------------------------------------------------

def test_gpt_block_is_causal_and_shaped():
    block = nn.GPTBlock(16, 4)
    assert [n for n, _ in block.named_parameters()] == [
        "ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight",
        "attn.c_proj.bias", "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight",
        "mlp.c_proj.bias"]
    assert tuple(block.mlp.c_fc.weight.shape) == (64, 16)
    x = lepton.randn(2, 7, 16)
    y = block(x)
    assert tuple(y.shape) == (2, 7, 16)
    changed = x.numpy().copy()
    changed[:, 5:] = 0.0
    z = block(lepton.tensor(changed))
    assert_close(z[:, :5], y[:, :5].numpy(), rtol=1e-5, atol=1e-6)
    assert not np.allclose(z[:, 5:].numpy(), y[:, 5:].numpy())
    assert list(nn.GPTBlock(16, 4, bias=False).named_parameters())[0][0] == "ln_1.weight"
    assert all(not n.endswith("bias") for n, _ in nn.GPTBlock(16, 4, bias=False).named_parameters())


@pytest.mark.parametrize("bad,exc,match", [
    (lambda: nn.GPTBlock(10, 4), ValueError, r"n_embd \(10\) must be divisible by n_head \(4\)"),
    (lambda: nn.GPTBlock(8, 2)(lepton.randn(2, 3, 6)), ValueError, r"\[B, T, 8\], got \(2, 3, 6\)"),
])
def test_gpt_block_errors(bad, exc, match):
    with pytest.raises(exc, match=match):
        bad()


@pytest.mark.parametrize("time", [1, 7, 16])
def test_char_gpt_matches_the_torch_reference(time):
    model = CharGPT(11, n_layer=2, n_head=2, n_embd=16, block_size=16)
    tmodel = torch_gpt(torch, 11, 2, 2, 16, 16)
    idx = np.random.default_rng(time).integers(0, 11, (3, time))
    check(model, tmodel, [idx], lambda m, i: m(i), lambda m, i: m(i))


def test_char_gpt_init_and_tying():
    lepton.manual_seed(0)
    model = CharGPT(50, n_layer=4, n_head=4, n_embd=128, block_size=64)
    assert model.lm_head.weight is model.wte.weight
    params = dict(model.named_parameters())
    assert "lm_head.weight" not in params  # tied: counted once
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == 50 * 128 + 64 * 128 + 4 * (12 * 128 * 128 + 13 * 128) + 2 * 128
    for name, p in params.items():
        v = p.detach().numpy()
        if name.endswith("c_proj.weight"):
            assert abs(v.std() - 0.02 / math.sqrt(8)) < 1e-3, name
        elif name.endswith("weight") and p.dim() == 2:
            assert abs(v.std() - 0.02) < 1e-3, name
        elif name.startswith("ln") or ".ln_" in name:
            assert np.all(v == (1.0 if name.endswith("weight") else 0.0)), name
        else:
            assert np.all(v == 0.0), name  # linear biases
    model.double()  # converting replaces the parameters; the tie must survive
    assert model.lm_head.weight is model.wte.weight and model.wte.weight.dtype == lepton.float64
    untied = CharGPT(50, n_layer=1, n_embd=16, n_head=2, tie_weights=False)
    assert untied.lm_head.weight is not untied.wte.weight


def test_char_gpt_errors():
    model = CharGPT(10, n_layer=1, n_head=2, n_embd=8, block_size=4)
    with pytest.raises(ValueError, match="length 5, block_size is 4"):
        model(lepton.zeros((1, 5), dtype=lepton.int64))
    with pytest.raises(TypeError, match=r"\[B, T\] int64"):
        model(lepton.zeros((1, 3)))
    with pytest.raises(TypeError, match=r"\[B, T\] int64"):
        model(lepton.zeros(3, dtype=lepton.int64))
    with pytest.raises(ValueError, match="n_embd"):
        CharGPT(10, n_embd=0)
    with pytest.raises(ValueError, match="temperature"):
        model.generate(lepton.zeros((1, 1), dtype=lepton.int64), 2, temperature=0)
    with pytest.raises(ValueError, match="top_k"):
        model.generate(lepton.zeros((1, 1), dtype=lepton.int64), 2, top_k=0)


def test_generate_shapes_range_seeding_and_cropping():
    model = CharGPT(13, n_layer=1, n_head=2, n_embd=16, block_size=8)
    start = lepton.zeros((2, 3), dtype=lepton.int64)
    lepton.manual_seed(5)
    a = model.generate(start, 20)  # runs past block_size: the context is cropped
    lepton.manual_seed(5)
    b = model.generate(start, 20)
    assert tuple(a.shape) == (2, 23) and a.dtype == lepton.int64
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert a.numpy().min() >= 0 and a.numpy().max() < 13
    np.testing.assert_array_equal(a[:, :3].numpy(), 0)
    assert model.training and lepton.is_grad_enabled()  # both restored after generating


def test_generate_top_k_1_is_greedy():
    model = CharGPT(13, n_layer=1, n_head=2, n_embd=16, block_size=8)
    idx = lepton.tensor([[1, 2, 3]])
    out = model.generate(idx, 5, top_k=1)
    greedy = idx
    for _ in range(5):
        with lepton.no_grad():
            nxt = model(greedy[:, -8:])[:, -1].argmax(-1, keepdim=True)
        greedy = lepton.cat([greedy, nxt], 1)
    np.testing.assert_array_equal(out.numpy(), greedy.numpy())


def test_sampling_follows_softmax_and_top_k():
    """The Gumbel-max draw: frequencies match softmax(logits / T); top_k never draws outside the k best."""
    from lepton.models.generation import sample_next

    logits = np.array([0.0, 1.0, 2.0, -1.0, 0.5], dtype=np.float32)
    rows = lepton.tensor(np.tile(logits, (40000, 1)))
    draws = sample_next(rows).numpy().ravel()
    freq = np.bincount(draws, minlength=5) / len(draws)
    expected = np.exp(logits) / np.exp(logits).sum()
    np.testing.assert_allclose(freq, expected, atol=0.01)

    model = CharGPT(13, n_layer=1, n_head=2, n_embd=16, block_size=8)
    idx = lepton.zeros((64, 1), dtype=lepton.int64)
    with lepton.no_grad():
        top3 = set(np.argsort(model(idx)[0, -1].numpy())[-3:])
    out = model.generate(idx, 1, top_k=3).numpy()[:, 1]
    assert set(out) <= top3 and len(set(out)) > 1


def test_char_gpt_overfits_a_short_text():
    text = np.array([3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3, 8, 4, 6, 2, 6, 4], dtype=np.int64)
    model = CharGPT(10, n_layer=2, n_head=2, n_embd=32, block_size=23)
    opt = lepton.optim.AdamW(model.parameters(), lr=1e-2)
    x, y = lepton.tensor(text[None, :-1]), lepton.tensor(text[None, 1:])
    for _ in range(60):
        loss = F.cross_entropy(model(x).reshape([-1, 10]), y.reshape([-1]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05
    out = model.generate(lepton.tensor(text[None, :1]), 23, top_k=1)
    np.testing.assert_array_equal(out.numpy()[0], text)
