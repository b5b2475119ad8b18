"""KV-cache generation (nn.KVCache, CausalSelfAttention/GPTBlock with a cache, models/generation.py):
cached decoding gives the logits and tokens of plain decoding; top-k / top-p restrict the draw."""

import numpy as np
import pytest

import lepton
import lepton.nn as nn
from lepton.models import CharGPT
from lepton.models.generation import sample_next
from lepton.quant import quantize_dynamic


@pytest.fixture(scope="module")
def model():
    lepton.manual_seed(0)
    return CharGPT(40, n_layer=2, n_head=4, n_embd=32, block_size=24).eval()


def test_a_cached_block_gives_the_uncached_outputs_chunk_by_chunk():
    lepton.manual_seed(1)
    block = nn.GPTBlock(16, 4).eval()
    x = lepton.randn(2, 11, 16)
    with lepton.no_grad():
        full = block(x).numpy()
        cache = nn.KVCache(16)
        parts = [block(x[:, a:b], cache).numpy() for a, b in ((0, 4), (4, 5), (5, 9), (9, 11))]
    assert cache.length == 11
    np.testing.assert_allclose(np.concatenate(parts, 1), full, rtol=1e-5, atol=1e-6)


def test_cached_model_logits_equal_the_full_forward(model):
    seq = lepton.randint(0, 40, (3, 24))
    with lepton.no_grad():
        full = model(seq).numpy()
        caches = model.new_caches()
        steps = [model(seq[:, :7], caches).numpy()] + [model(seq[:, t:t + 1], caches).numpy() for t in range(7, 24)]
    np.testing.assert_allclose(np.concatenate(steps, 1), full, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="sequence of length 25, block_size is 24"):
        model(seq[:, :1], caches)


@pytest.mark.parametrize("settings", [{}, {"top_k": 5}, {"top_p": 0.8, "temperature": 0.7}])
def test_generation_with_and_without_cache_draws_the_same_tokens(model, settings):
    prompt = lepton.randint(0, 40, (2, 3))
    outs = []
    for use_cache in (True, False):
        lepton.manual_seed(9)
        outs.append(model.generate(prompt, 40, use_cache=use_cache, **settings).numpy())  # past block_size
    np.testing.assert_array_equal(*outs)
    assert outs[0].shape == (2, 43) and np.array_equal(outs[0][:, :3], prompt.numpy())


def test_streaming_yields_what_generate_returns(model):
    prompt = lepton.randint(0, 40, (1, 4))
    lepton.manual_seed(2)
    tokens = [t.item() for t in model.stream(prompt, 12, top_k=3)]
    lepton.manual_seed(2)
    assert model.generate(prompt, 12, top_k=3)[0, 4:].tolist() == tokens
    assert model.training is False


def test_top_k_and_top_p_restrict_the_draw():
    logits = lepton.tensor([[0.0, 3.0, 2.9, -1.0, 1.0]] * 400)
    lepton.manual_seed(0)
    assert set(sample_next(logits, top_k=1).flatten().tolist()) == {1}
    assert set(sample_next(logits, top_k=2).flatten().tolist()) == {1, 2}
    # probabilities ~ [.02, .47, .43, .01, .07]: top_p 0.5 keeps tokens 1 and 2, 0.3 only token 1
    assert set(sample_next(logits, top_p=0.5).flatten().tolist()) == {1, 2}
    assert set(sample_next(logits, top_p=0.3).flatten().tolist()) == {1}
    counts = np.bincount(sample_next(logits).flatten().numpy(), minlength=5) / 400
    probs = np.exp([0.0, 3.0, 2.9, -1.0, 1.0]) / np.exp([0.0, 3.0, 2.9, -1.0, 1.0]).sum()
    assert np.abs(counts - probs).max() < 0.08
    cold = np.bincount(sample_next(logits, temperature=0.01).flatten().numpy(), minlength=5)
    assert cold[1] >= 398  # 0.1 apart at temperature 0.01: e^-10 odds for token 2


@pytest.mark.parametrize("bad, message", [({"temperature": 0}, "temperature"), ({"top_k": 0}, "top_k"),
                                          ({"top_p": 1.5}, "top_p"), ({"temperature": float("nan")}, "temperature")])
def test_bad_sampling_settings_are_named(model, bad, message):
    with pytest.raises(ValueError, match=message):
        model.generate(lepton.zeros(1, 1, dtype=lepton.int64), 2, **bad)


def test_the_cache_refuses_what_does_not_fit():
    cache = nn.KVCache(4)
    cache.append(lepton.zeros(1, 2, 3, 8), lepton.zeros(1, 2, 3, 8))
    with pytest.raises(ValueError, match="5 positions do not fit its max_length 4"):
        cache.append(lepton.zeros(1, 2, 2, 8), lepton.zeros(1, 2, 2, 8))
    with pytest.raises(ValueError, match="reset"):
        cache.append(lepton.zeros(2, 2, 1, 8), lepton.zeros(2, 2, 1, 8))
    cache.reset()
    assert cache.length == 0
    with pytest.raises(ValueError, match="max_length must be a positive integer"):
        nn.KVCache(0)


def test_int8_weight_only_model_generates_close_to_float(model):
    q = quantize_dynamic(model, weight_only=True)
    seq = lepton.randint(0, 40, (2, 16))
    with lepton.no_grad():
        ref, got = model(seq).numpy(), q(seq).numpy()
        caches = q.new_caches()
        cached = np.concatenate([q(seq[:, :8], caches).numpy(), q(seq[:, 8:], caches).numpy()], 1)
    assert np.abs(got - ref).max() < 0.05 * np.abs(ref).max()
    np.testing.assert_allclose(cached, got, rtol=1e-5, atol=1e-5)
    assert q.generate(seq[:, :2], 30, top_k=5).shape == (2, 32)


@pytest.mark.parametrize("batch_first", [True, False])
def test_multihead_attention_with_a_cache_matches_the_causal_full_pass(batch_first):
    lepton.manual_seed(3)
    mha = nn.MultiheadAttention(16, 4, batch_first=batch_first).eval()
    x = lepton.randn(2, 9, 16) if batch_first else lepton.randn(9, 2, 16)
    part = (lambda a, b: x[:, a:b]) if batch_first else (lambda a, b: x[a:b])
    with lepton.no_grad():
        full = mha(x, x, x, attn_mask=nn.Transformer.generate_square_subsequent_mask(9), is_causal=True,
                   need_weights=False)[0].numpy()
        cache = nn.KVCache(12)
        chunks = [mha(part(a, b), part(a, b), part(a, b), is_causal=True, need_weights=weights, cache=cache)[0].numpy()
                  for (a, b), weights in (((0, 4), False), ((4, 5), True), ((5, 9), False))]
    np.testing.assert_allclose(np.concatenate(chunks, 1 if batch_first else 0), full, rtol=1e-5, atol=1e-6)
    with pytest.raises(NotImplementedError, match="key_padding_mask"):
        mha(part(0, 1), part(0, 1), part(0, 1), key_padding_mask=lepton.zeros(2, 1, dtype=lepton.bool), cache=cache)
