"""int8 GEMM kernels (exact int32 against numpy), dynamic quantisation of Linear/Conv2d
(against a numpy emulation and the float model), save/load, inference_mode and nn.utils.fuse."""

import threading

import numpy as np
import pytest

import lepton
from lepton import _C, nn, quant
from conftest import run_python

SHAPES = [(1, 1, 1), (1, 10, 784), (7, 33, 13), (6, 64, 4), (13, 17, 5), (64, 128, 784), (5, 130, 67),
          (0, 5, 3), (3, 0, 8), (97, 65, 129)]


def _int8(rng, shape, low=-128):
    return rng.integers(low, 128, shape).astype(np.int8)


def _np_quantize_rows(x):
    """Reference of the kernels' rule: scale = max|row|/127, q = round-half-even(x·(127/max))."""
    amax = np.abs(x).max(axis=1) if x.shape[1] else np.zeros(len(x), np.float32)
    inv = np.where(amax > 0, np.float32(127) / np.where(amax > 0, amax, 1), 0).astype(np.float32)
    q = np.clip(np.rint(x * inv[:, None]), -127, 127).astype(np.int8)
    return q, (amax / np.float32(127)).astype(np.float32)


def _np_int8_linear(x, w, bias, relu=False):
    qx, sx = _np_quantize_rows(x)
    qw, sw = _np_quantize_rows(w)
    acc = qx.astype(np.int64) @ qw.astype(np.int64).T
    y = acc.astype(np.float32) * (sx[:, None] * sw[None, :]) + (0 if bias is None else bias)
    return np.maximum(y, 0) if relu else y


@pytest.mark.parametrize("m,n,k", SHAPES)
@pytest.mark.parametrize("reference", [False, True])
def test_int8_mm_exact(m, n, k, reference):
    rng = np.random.default_rng(m * 1000 + n + k)
    a, w = _int8(rng, (m, k)), _int8(rng, (n, k), low=-127)
    packed = _C.int8_pack_weight(lepton.from_numpy(w))
    assert packed.packed.dtype == lepton.int8 and packed.colsum.dtype == lepton.int32
    assert (packed.out_features, packed.in_features) == (n, k)
    np.testing.assert_array_equal(packed.colsum.numpy(), w.astype(np.int64).sum(1))
    c = _C.int8_mm(lepton.from_numpy(a), packed, reference=reference)
    assert c.dtype == lepton.int32 and tuple(c.shape) == (m, n)
    np.testing.assert_array_equal(c.numpy(), a.astype(np.int64) @ w.astype(np.int64).T)


def test_int8_mm_extremes_exact():
    """All-(-128) activations against all-(±127) weights over a long k: the largest sums."""
    k = 4099
    a = np.full((7, k), -128, np.int8)
    w = np.stack([np.full(k, 127, np.int8), np.full(k, -127, np.int8)] * 9)
    c = _C.int8_mm(lepton.from_numpy(a), _C.int8_pack_weight(lepton.from_numpy(w))).numpy()
    np.testing.assert_array_equal(c, a.astype(np.int64) @ w.astype(np.int64).T)


@pytest.mark.parametrize("isa", ["avx2", "scalar"])
def test_portable_kernel_exact(isa):
    """The portable kernel (every build but AVX-512 VNNI) gives the same exact sums."""
    r = run_python("""
        import numpy as np, lepton
        from lepton import _C
        assert _C.int8_gemm_kernel() == "portable", _C.int8_gemm_kernel()
        rng = np.random.default_rng(1)
        for m, n, k in [(1, 10, 784), (7, 33, 13), (64, 128, 300), (13, 17, 5)]:
            a = rng.integers(-128, 128, (m, k)).astype(np.int8)
            w = rng.integers(-127, 128, (n, k)).astype(np.int8)
            p = _C.int8_pack_weight(lepton.from_numpy(w))
            c = _C.int8_mm(lepton.from_numpy(a), p).numpy()
            assert (c == a.astype(np.int64) @ w.astype(np.int64).T).all(), (m, n, k)
            x = rng.standard_normal((m, k)).astype(np.float32)
            y = _C.int8_linear(lepton.from_numpy(x), p, lepton.ones(n)).numpy()
            yr = _C.int8_linear(lepton.from_numpy(x), p, lepton.ones(n), reference=True).numpy()
            assert np.allclose(y, yr, rtol=1e-6, atol=1e-6)
        print("ok")
    """, env={"LEPTON_CPU_ISA": isa})
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr


def test_active_kernel_is_vnni_when_available():
    flags = open("/proc/cpuinfo").read()
    expected = "avx512-vnni" if " avx512_vnni" in flags and " avx512bw" in flags else "portable"
    assert _C.int8_gemm_kernel() == expected


@pytest.mark.parametrize("rows,cols", [(1, 1), (3, 7), (5, 784), (0, 4), (2, 0)])
def test_quantize_rows_matches_numpy(rows, cols):
    x = np.random.default_rng(cols).standard_normal((rows, cols)).astype(np.float32) * 3
    if rows > 1 and cols:
        x[1] = 0  # an all-zero row: scale 0, values 0
    q, s = _C.quantize_rows_int8(lepton.from_numpy(x))
    qr, sr = _np_quantize_rows(x)
    np.testing.assert_array_equal(q.numpy(), qr)
    np.testing.assert_array_equal(s.numpy(), sr)
    if rows and cols:
        assert np.abs(q.numpy()).max() <= 127


@pytest.mark.parametrize("m,n,k", [s for s in SHAPES if s[2] > 0])
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("reference", [False, True])
def test_int8_linear_matches_emulation_and_float(m, n, k, relu, reference):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((m, k)).astype(np.float32)
    w = (rng.standard_normal((n, k)) / np.sqrt(k)).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32)
    q, s = quant.quantize_per_channel(lepton.from_numpy(w))
    y = _C.int8_linear(lepton.from_numpy(x), _C.int8_pack_weight(q), s, lepton.from_numpy(b), relu=relu,
                       reference=reference).numpy()
    np.testing.assert_allclose(y, _np_int8_linear(x, w, b, relu), rtol=1e-5, atol=1e-5)
    # against float: each product's error is bounded by the two half-steps of the scales
    exact = x @ w.T + b
    if relu:
        exact = np.maximum(exact, 0)
    bound = (np.abs(x).max(1, keepdims=True) / 127 * np.abs(w).sum(1)[None, :] / 2
             + np.abs(x).sum(1, keepdims=True) * (np.abs(w).max(1) / 127)[None, :] / 2) * 1.01 + 1e-5
    assert (np.abs(y - exact) <= bound).all()


def test_int8_linear_shapes_and_errors():
    w = lepton.randn(6, 10)
    q, s = quant.quantize_per_channel(w)
    p = _C.int8_pack_weight(q)
    assert tuple(_C.int8_linear(lepton.randn(2, 3, 10), p, s).shape) == (2, 3, 6)
    assert tuple(_C.int8_linear(lepton.randn(0, 10), p, s).shape) == (0, 6)
    with pytest.raises(ValueError, match=r"input has 9 features but the packed weight is \[6, 10\]"):
        _C.int8_linear(lepton.randn(2, 9), p, s)
    with pytest.raises(TypeError, match="input must be float32"):
        _C.int8_linear(lepton.randn(2, 10, dtype=lepton.float64), p, s)
    with pytest.raises(ValueError, match=r"weight scale must have shape \[6\]"):
        _C.int8_linear(lepton.randn(2, 10), p, lepton.ones(5))
    with pytest.raises(ValueError, match=r"bias must have shape \[6\]"):
        _C.int8_linear(lepton.randn(2, 10), p, s, lepton.ones(7))
    with pytest.raises(TypeError, match="weight must be int8"):
        _C.int8_pack_weight(w)
    with pytest.raises(RuntimeError, match="inference-only"):
        _C.int8_linear(lepton.randn(2, 10, requires_grad=True), p, s)
    with lepton.no_grad():  # fine without a graph
        _C.int8_linear(lepton.randn(2, 10, requires_grad=True), p, s)


# ---- quantize_dynamic --------------------------------------------------------------------------

def _mlp():
    lepton.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(),
                         nn.Linear(64, 10))


def _cnn():
    lepton.manual_seed(1)
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 6, 3, stride=2), nn.ReLU(),
                         nn.Conv2d(6, 5, 2, padding="same", dilation=1), nn.Flatten(), nn.Linear(5 * 5 * 5, 10))


def _rel_err(a, b):
    return np.abs(a - b).max() / np.abs(b).max()


def test_quantize_dynamic_mlp():
    model = _mlp()
    x = lepton.rand(9, 1, 28, 28)
    q = quant.quantize_dynamic(model)
    kinds = [type(m).__name__ for m in q]
    assert kinds == ["Flatten", "QuantizedLinear", "Identity", "QuantizedLinear", "Identity", "QuantizedLinear"]
    assert isinstance(model[1], nn.Linear)  # the original is untouched
    assert q._quant_config["modules"] == {"1": "linear+relu", "3": "linear+relu", "5": "linear"}
    with lepton.inference_mode():
        ref, out = model(x).numpy(), q(x).numpy()
    assert _rel_err(out, ref) < 0.03
    unfused = quant.quantize_dynamic(model, fuse_relu=False)
    with lepton.no_grad():
        np.testing.assert_allclose(unfused(x).numpy(), out, rtol=1e-5, atol=1e-6)
    weight_only = quant.quantize_dynamic(model, weight_only=True)
    with lepton.no_grad():
        wo = weight_only(x).numpy()
    assert _rel_err(wo, ref) < 0.02 and not np.array_equal(wo, ref)
    only = quant.quantize_dynamic(model, qconfig_spec={"5"})
    assert isinstance(only[1], nn.Linear) and isinstance(only[5], quant.QuantizedLinear)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_quantized_conv_keeps_the_padding_mode(mode):
    lepton.manual_seed(3)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, padding_mode=mode), nn.Flatten(), nn.Linear(8 * 36, 4))
    x = lepton.randn(2, 3, 6, 6)
    with lepton.no_grad():
        ref = model(x).numpy()
        q = quant.quantize_dynamic(model)
        zero_padded = quant.quantize_dynamic(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), *list(model)[1:]))
        zero_padded[0].load_state_dict(q[0].state_dict())
        assert _rel_err(q(x).numpy(), ref) < 0.03
        assert _rel_err(zero_padded(x).numpy(), ref) > 0.05  # the mode matters here


def test_qconfig_spec_takes_module_types_and_names_as_torch_does():
    """{nn.Linear} is what torch users write: it must select by type, not match no name and
    silently quantise nothing."""
    model = _cnn()
    linear_only = quant.quantize_dynamic(model, {nn.Linear})
    assert [type(m).__name__ for m in linear_only] == ["Conv2d", "ReLU", "Conv2d", "ReLU", "Conv2d", "Flatten",
                                                       "QuantizedLinear"]
    mixed = quant.quantize_dynamic(model, {nn.Conv2d: None, "6": None})  # a dict's keys, as torch's qconfig dicts
    assert set(mixed._quant_config["modules"]) == {"0", "2", "4", "6"}
    with pytest.raises(TypeError, match="module names and types, got 3"):
        quant.quantize_dynamic(model, {3})
    with pytest.raises(ValueError, match=r"does not have: \['fc'\]"):
        quant.quantize_dynamic(model, {"fc"})


def test_quantize_dynamic_against_torch():
    torch = pytest.importorskip("torch")
    model = _mlp()
    tm = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 128), torch.nn.ReLU(), torch.nn.Linear(128, 64),
                             torch.nn.ReLU(), torch.nn.Linear(64, 10))
    tm.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in model.state_dict().items()})
    tq = torch.ao.quantization.quantize_dynamic(tm, {torch.nn.Linear}, dtype=torch.qint8)
    x = np.random.default_rng(0).random((16, 1, 28, 28), dtype=np.float32)
    with lepton.no_grad():
        ours = quant.quantize_dynamic(model)(lepton.from_numpy(x)).numpy()
    with torch.no_grad():
        ref, theirs = tm(torch.from_numpy(x)).numpy(), tq(torch.from_numpy(x)).numpy()
    # torch quantises activations per tensor (u8, affine), we per row (s8, symmetric): both near float
    assert _rel_err(ours, ref) < 0.03 and _rel_err(theirs, ref) < 0.05


def test_quantize_dynamic_conv():
    model = _cnn()
    q = quant.quantize_dynamic(model)
    assert [type(m).__name__ for m in q][:3] == ["QuantizedConv2d", "Identity", "QuantizedConv2d"]
    x = lepton.randn(3, 1, 12, 12)
    with lepton.no_grad():
        ref, out = model(x).numpy(), q(x).numpy()
        assert _rel_err(out, ref) < 0.04
        unbatched, batched = q[0](x[0]).numpy(), q[0](x).numpy()
    np.testing.assert_allclose(unbatched, batched[0], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"expected input \[N, 1, H, W\]"):
        q[0](lepton.randn(2, 3, 12, 12))


def test_quantized_save_load(tmp_path):
    model = _mlp()
    q = quant.quantize_dynamic(model)
    path = tmp_path / "q.safetensors"
    lepton.save(quant.state_dict(q), str(path))
    state = lepton.load(str(path))
    assert state["model"]["1.weight"].dtype == lepton.int8 and state["quant"]["weight_only"] is False
    fresh = _mlp()
    lepton.manual_seed(5)
    for p in fresh.parameters():  # other float weights: the loaded int8 ones must win
        p.detach().normal_()
    loaded = quant.load(fresh, state)
    x = lepton.rand(4, 784)
    with lepton.no_grad():
        np.testing.assert_array_equal(loaded(x).numpy(), q(x).numpy())
    with pytest.raises(ValueError, match="do not match"):
        quant.load(nn.Sequential(nn.Linear(784, 10)), state)
    with pytest.raises(ValueError, match="not a quantised-model state"):
        quant.load(_mlp(), {"model": {}})
    with pytest.raises(ValueError, match="not made by lepton.quant"):
        quant.state_dict(model)


def test_quantize_dynamic_bad_arguments():
    with pytest.raises(ValueError, match="only dtype='int8'"):
        quant.quantize_dynamic(_mlp(), dtype="float16")
    with pytest.raises(TypeError, match="expected an nn.Module"):
        quant.quantize_dynamic("model")


# ---- inference_mode and fuse -------------------------------------------------------------------

def test_inference_mode():
    w = lepton.randn(3, requires_grad=True)
    assert not lepton.is_inference_mode_enabled()
    with lepton.inference_mode():
        assert lepton.is_inference_mode_enabled() and not lepton.is_grad_enabled()
        y = w * 2
    assert not y.requires_grad and y.grad_fn is None
    assert lepton.is_grad_enabled() and not lepton.is_inference_mode_enabled()
    with lepton.inference_mode(False):
        assert (w * 2).requires_grad

    @lepton.inference_mode()
    def f(t):
        return t * 3, lepton.is_inference_mode_enabled()

    out, flag = f(w)
    assert flag and not out.requires_grad and lepton.is_grad_enabled()
    seen = []
    with lepton.inference_mode():  # per thread, like grad mode
        t = threading.Thread(target=lambda: seen.append((lepton.is_inference_mode_enabled(), lepton.is_grad_enabled())))
        t.start()
        t.join()
    assert seen == [(False, True)]


def test_fuse_folds_batchnorm_and_activations():
    lepton.manual_seed(3)
    model = nn.Sequential(nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 8),
                          nn.BatchNorm1d(8), nn.GELU(), nn.Linear(8, 5, bias=False), nn.BatchNorm1d(5))
    model.train()
    for _ in range(3):  # non-trivial running statistics
        model(lepton.randn(6, 2, 6, 6) * 2 + 1)
    for bn in (model[1], model[5], model[8]):
        with lepton.no_grad():
            bn.weight.uniform_(0.5, 2.0)
            bn.bias.uniform_(-1, 1)
    model.eval()
    fused = nn.utils.fuse(model)
    assert [type(m).__name__ for m in fused] == ["Conv2d", "Identity", "ReLU", "Flatten", "LinearAct", "Identity",
                                                 "Identity", "Linear", "Identity"]
    assert fused[4].activation == "gelu" and fused[7].bias is not None
    assert isinstance(model[1], nn.BatchNorm2d)  # the original is untouched
    x = lepton.randn(5, 2, 6, 6)
    with lepton.no_grad():
        np.testing.assert_allclose(fused(x).numpy(), model(x).numpy(), rtol=1e-4, atol=1e-5)
