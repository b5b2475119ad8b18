"""The same tensor-core ops on CUDA compared with the CPU (skipped without a CUDA device)."""

import numpy as np
import pytest

import lepton
from conftest import ALL_DTYPES, FLOAT_DTYPES, INT_DTYPES, assert_close, lt, sample, to_np, tol

pytestmark = pytest.mark.cuda


def both(a, dtype=None):
    """The same data as a CPU tensor and a CUDA tensor."""
    c = lt(a, dtype)
    return c, c.to("cuda")


def same(gpu, cpu, **kw):
    assert gpu.device.type == "cuda" and gpu.dtype == cpu.dtype and gpu.shape == cpu.shape
    assert_close(gpu.cpu(), to_np(cpu), check_dtype=False, **kw)


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_copies_host_device(dtype):
    c, g = both(sample((37, 19), dtype), dtype)
    assert g.is_cuda and g.device == lepton.device("cuda:0")
    same(g, c, rtol=0, atol=0)
    same(g.T.contiguous(), c.T.contiguous(), rtol=0, atol=0)  # device-side strided copy
    same(g[:, ::3].cpu().to("cuda"), c[:, ::3], rtol=0, atol=0)  # strided download
    h = lepton.empty(37, 19, dtype=dtype)
    h.copy_(g)
    assert_close(h, to_np(c), check_dtype=False, rtol=0, atol=0)
    g2 = lepton.zeros(37, 19, dtype=dtype, device="cuda")
    g2.copy_(c)
    same(g2, c, rtol=0, atol=0)
    for other in ALL_DTYPES:  # casts on the device
        same(g.to(other), c.to(other), rtol=0, atol=0)


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_fills(dtype):
    for fn in (lambda **k: lepton.zeros(5, 7, **k), lambda **k: lepton.ones(5, 7, **k),
               lambda **k: lepton.full((5, 7), 3, **k)):
        same(fn(dtype=dtype, device="cuda"), fn(dtype=dtype), rtol=0, atol=0)
    g = lepton.zeros(4, 6, dtype=dtype, device="cuda")
    g[:, ::2].fill_(1)
    c = lepton.zeros(4, 6, dtype=dtype)
    c[:, ::2].fill_(1)
    same(g, c, rtol=0, atol=0)
    same(lepton.arange(10, device="cuda").to(dtype), lepton.arange(10).to(dtype), rtol=0, atol=0)
    same(lepton.linspace(0, 1, 9, device="cuda"), lepton.linspace(0, 1, 9), rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [d for d in ALL_DTYPES if d != lepton.bool])
@pytest.mark.parametrize("op", ["add", "sub", "mul", "div", "maximum", "minimum", "floor_divide", "remainder", "eq", "lt"])
def test_binary_broadcast(dtype, op):
    a = sample((7, 1, 33), dtype, seed=1, low=0.5, high=3)
    b = sample((5, 1), dtype, seed=2, low=0.5, high=3)
    if dtype in INT_DTYPES:
        b = np.where(b == 0, 1, b).astype(b.dtype)
    ca, ga = both(a, dtype)
    cb, gb = both(b, dtype)
    t = dict(tol(dtype))
    if op in ("floor_divide", "remainder") and dtype in FLOAT_DTYPES:
        t = dict(rtol=1e-2, atol=1e-2)  # a/b may round to the other side of an integer
    same(getattr(ga, op)(gb), getattr(ca, op)(cb), **t)
    if op not in ("maximum", "minimum"):  # these take tensors only, as in torch
        same(getattr(ga.mT, op)(2), getattr(ca.mT, op)(2), **t)  # non-contiguous with a scalar


@pytest.mark.parametrize("dtype", [lepton.bool])
def test_bool_ops(dtype):
    ca, ga = both(sample((6, 5), dtype, seed=1), dtype)
    cb, gb = both(sample((5,), dtype, seed=2), dtype)
    for f in (lambda x, y: x & y, lambda x, y: x | y, lambda x, y: x ^ y, lambda x, y: ~x, lambda x, y: x == y):
        same(f(ga, gb), f(ca, cb), rtol=0, atol=0)
    same(lepton.where(ga, ga.to(lepton.float32), 2.0), lepton.where(ca, ca.to(lepton.float32), 2.0), rtol=0, atol=0)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("name", ["exp", "log", "sqrt", "tanh", "sigmoid", "relu", "gelu", "silu", "sin", "erf",
                                  "floor", "round", "reciprocal", "log1p", "expm1", "abs", "neg", "rsqrt"])
def test_unary(dtype, name):
    c, g = both(sample((129, 33), dtype, low=0.1, high=4), dtype)
    same(getattr(g, name)(), getattr(c, name)(), **tol(dtype))
    same(getattr(g.T, name)(), getattr(c.T, name)(), **tol(dtype))


def test_special_values_and_clamp():
    a = np.array([np.inf, -np.inf, np.nan, 0.0, -1.0, 1e30], np.float32)
    c, g = both(a)
    for name in ("exp", "log", "tanh", "sigmoid", "relu"):
        same(getattr(g, name)(), getattr(c, name)(), rtol=1e-5, atol=1e-6)
    same(g.clamp(-1, 1), c.clamp(-1, 1), rtol=0, atol=0)
    same(lepton.maximum(g, lepton.zeros_like(g)), lepton.maximum(c, lepton.zeros_like(c)), rtol=0, atol=0)
    ci, gi = both(np.array([-5, 0, 5], np.int32), lepton.int32)
    same(gi.clamp(-2, 2), ci.clamp(-2, 2), rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [lepton.float32, lepton.float16, lepton.bfloat16, lepton.float64, lepton.int32,
                                   lepton.int64, lepton.uint8, lepton.bool])
@pytest.mark.parametrize("dim", [None, 0, 1, (0, 2), -1])
def test_reductions(dtype, dim):
    c, g = both(sample((9, 65, 17), dtype, low=0.5, high=1.5), dtype)
    args = () if dim is None else (dim,)
    t = dict(rtol=1e-5, atol=1e-5) if dtype in (lepton.float32, lepton.float64) else dict(rtol=2e-2, atol=2e-2)
    for name in ("sum", "amax", "amin", "all", "any"):
        same(getattr(g, name)(*args), getattr(c, name)(*args), **t)
    if dtype in FLOAT_DTYPES:
        for name in ("mean", "var", "std", "logsumexp"):
            same(getattr(g, name)(*(args or ((0, 1, 2),))), getattr(c, name)(*(args or ((0, 1, 2),))), **t)
    if isinstance(dim, int):
        gv, gi = g.max(dim)
        cv, ci = c.max(dim)
        same(gv, cv, rtol=0, atol=0)
        same(gi, ci, rtol=0, atol=0)
        same(g.argmin(dim, keepdim=True), c.argmin(dim, keepdim=True), rtol=0, atol=0)
    same(g.argmax(), c.argmax(), rtol=0, atol=0)


def test_argmax_ties_and_nan():
    a = np.array([[1, 3, 3, 0], [np.nan, 1, np.nan, 2]], np.float32)
    c, g = both(a)
    for dim in (0, 1):
        same(g.argmax(dim), c.argmax(dim), rtol=0, atol=0)
        same(g.max(dim).values, c.max(dim).values, rtol=0, atol=0)


def test_large_sum():
    n = 16 * 1024 * 1024
    g = lepton.ones(n, device="cuda")
    assert g.sum().item() == n
    c, g = both(sample((n,), low=-1, high=1, seed=7))
    ref = np.float64(to_np(c).astype(np.float64).sum())
    assert abs(g.sum().item() - ref) <= 1e-4 * np.sqrt(n)
    assert abs(g.mean().item() - ref / n) <= 1e-6
    same(g.argmax(), c.argmax(), rtol=0, atol=0)
    rows_c, rows_g = c.reshape(4, -1), g.reshape(4, -1)
    same(rows_g.sum(1), rows_c.sum(1), rtol=1e-4, atol=1e-2)
    cols_c, cols_g = c.reshape(-1, 4), g.reshape(-1, 4)
    same(cols_g.sum(0), cols_c.sum(0), rtol=1e-4, atol=1e-2)


@pytest.mark.parametrize("dtype", [lepton.float32, lepton.float64, lepton.float16, lepton.bfloat16])
def test_random_matches_cpu(dtype):
    for shape in ((1000,), (3, 37, 5)):
        lepton.manual_seed(42)
        c = lepton.rand(*shape, dtype=dtype)
        lepton.manual_seed(42)
        g = lepton.rand(*shape, dtype=dtype, device="cuda")
        same(g, c, rtol=0, atol=0)  # identical bits for the same seed
        lepton.manual_seed(42)
        c = lepton.randn(*shape, dtype=dtype)
        lepton.manual_seed(42)
        g = lepton.randn(*shape, dtype=dtype, device="cuda")
        # the same normals up to libm differences; half types may round an ulp apart
        same(g, c, **(dict(rtol=1e-6, atol=1e-6) if dtype in (lepton.float32, lepton.float64) else tol(dtype)))
    lepton.manual_seed(3)
    c = lepton.randint(-10, 10, (500,))
    lepton.manual_seed(3)
    same(lepton.randint(-10, 10, (500,), device="cuda"), c, rtol=0, atol=0)


def test_indexing_and_setitem():
    a = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
    c, g = both(a)
    keys = [(1,), (slice(None), 2, slice(1, None, 2)), ([3, 0, 3],), (slice(None), [1, 4], [0, 5]),
            (Ellipsis, [2, 2]), ([0, 1], slice(None), [2, 3])]
    for key in keys:
        same(g[key], c[key], rtol=0, atol=0)
    mask_c = c > 50
    same(g[mask_c.to("cuda")], c[mask_c], rtol=0, atol=0)
    idx = lepton.tensor([2, 0])
    same(g[idx.to("cuda")], c[idx], rtol=0, atol=0)
    same(g.index_select(1, idx.to("cuda")), c.index_select(1, idx), rtol=0, atol=0)
    same(g.nonzero(), c.nonzero(), rtol=0, atol=0)
    for key, val in [((0,), 1.0), ((slice(None), [1, 3]), -2.0), ((mask_c,), 7.0)]:
        gk = tuple(k.to("cuda") if isinstance(k, lepton.Tensor) else k for k in key)
        g[gk] = val
        c[key] = val
        same(g, c, rtol=0, atol=0)
    g[:, 0] = lepton.arange(6.0, device="cuda")
    c[:, 0] = lepton.arange(6.0)
    same(g, c, rtol=0, atol=0)


def test_cat_stack():
    a, b = sample((3, 4), seed=1), sample((3, 2), seed=2)
    (ca, ga), (cb, gb) = both(a), both(b)
    same(lepton.cat([ga, gb], 1), lepton.cat([ca, cb], 1), rtol=0, atol=0)
    same(lepton.cat([ga.T, gb.T.to(lepton.float16)], 0), lepton.cat([ca.T, cb.T.to(lepton.float16)], 0), rtol=0, atol=0)
    same(lepton.stack([ga, ga * 2], 1), lepton.stack([ca, ca * 2], 1), rtol=0, atol=0)
    with pytest.raises((ValueError, RuntimeError), match="cuda|cpu|device"):
        lepton.cat([ga, ca])
    with pytest.raises((ValueError, RuntimeError), match="cuda|cpu|device"):
        ga + ca


def test_dlpack_torch_cuda():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA here")
    g = lepton.arange(12.0, device="cuda").reshape(3, 4)
    tt = torch.from_dlpack(g)
    assert tt.is_cuda and tt.data_ptr() == g.data_ptr()
    assert tt.cpu().numpy().tolist() == g.cpu().tolist()
    nc = torch.from_dlpack(g.T)
    assert tuple(nc.stride()) == g.T.stride()
    src = torch.arange(20, dtype=torch.bfloat16, device="cuda").reshape(4, 5)[:, 1::2]
    back = lepton.from_dlpack(src)
    assert back.is_cuda and back.dtype == lepton.bfloat16 and back.stride() == tuple(src.stride())
    assert back.float().cpu().tolist() == src.float().cpu().tolist()
    back.fill_(1)
    torch.cuda.synchronize()
    assert (src == 1).all().item()


def test_memory_stats():
    lepton.cuda.synchronize()
    lepton.cuda.empty_cache()
    before = lepton.cuda.memory_allocated()
    x = lepton.empty(1 << 20, device="cuda")
    assert lepton.cuda.memory_allocated() >= before + (4 << 20)
    assert lepton.cuda.memory_reserved() >= lepton.cuda.memory_allocated()
    del x
    assert lepton.cuda.memory_allocated() == before
    lepton.cuda.empty_cache()
    assert lepton.cuda.memory_reserved() >= lepton.cuda.memory_allocated()
    assert isinstance(lepton.cuda.get_device_name(), str) and lepton.cuda.device_count() >= 1


def test_cuda_oom_is_python_error():
    with pytest.raises(lepton.OutOfMemoryError):
        lepton.empty(1 << 48, device="cuda")
    lepton.ones(10, device="cuda").sum().item()  # still usable afterwards
