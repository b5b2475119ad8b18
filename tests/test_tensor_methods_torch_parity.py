"""The Tensor methods and free functions torch programs use (gather/scatter, sort/topk, cumsum,
masked_fill, tril, repeat, norm, multinomial ...) against torch 2.13: values, dtypes and
gradients on the same inputs."""

import math

import numpy as np
import pytest

import lepton

torch = pytest.importorskip("torch")

RNG = np.random.default_rng(0)


def both(a, requires_grad=False):
    x = lepton.tensor(a, requires_grad=requires_grad)
    t = torch.tensor(a, requires_grad=requires_grad)
    return x, t


def same(x, t, exact=False):
    assert tuple(x.shape) == tuple(t.shape)
    assert str(x.dtype).split(".")[-1] == str(t.dtype).split(".")[-1]
    if exact:
        np.testing.assert_array_equal(x.detach().numpy(), t.detach().numpy())
    else:
        np.testing.assert_allclose(x.detach().numpy(), t.detach().numpy(), rtol=1e-6, atol=1e-6)


def grads_match(fn, a, *args):
    x, t = both(a, requires_grad=True)
    out_l, out_t = fn(x, lepton, *args), fn(t, torch, *args)
    same(out_l, out_t)
    w = RNG.standard_normal(tuple(out_t.shape))
    (out_l * lepton.tensor(w, dtype=out_l.dtype)).sum().backward()
    (out_t * torch.tensor(w, dtype=out_t.dtype)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=1e-6, atol=1e-6)


A = RNG.standard_normal((4, 5))
IDX = RNG.integers(0, 4, size=(3, 5))


# ---- gather / scatter ----------------------------------------------------------------------------

@pytest.mark.parametrize("dim", [0, 1, -1])
def test_gather_values_and_gradient(dim):
    idx = RNG.integers(0, A.shape[dim], size=(3, 4))
    grads_match(lambda x, m, i: x.gather(dim, m.tensor(i)), A, idx)


def test_gather_out_of_range_and_bad_dtype():
    x = lepton.tensor(A)
    with pytest.raises(IndexError, match="out of bounds"):
        x.gather(0, lepton.tensor([[9]]))
    with pytest.raises(TypeError, match="int64"):
        x.gather(0, lepton.tensor([[0.0]]))
    with pytest.raises(IndexError, match="same number of dimensions"):
        x.gather(0, lepton.tensor([0]))


@pytest.mark.parametrize("method", ["scatter", "scatter_add"])
def test_scatter_and_scatter_add_with_gradients(method):
    src = RNG.standard_normal((3, 5))
    for src_grad in (False, True):
        x, t = both(A, requires_grad=True)
        sl, st = both(src, requires_grad=src_grad)
        out_l = getattr(x, method)(0, lepton.tensor(IDX), sl)
        out_t = getattr(t, method)(0, torch.tensor(IDX), st)
        same(out_l, out_t)
        w = RNG.standard_normal(A.shape)
        (out_l * lepton.tensor(w)).sum().backward()
        (out_t * torch.tensor(w)).sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy())
        if src_grad:
            np.testing.assert_allclose(sl.grad.numpy(), st.grad.numpy())


def test_inplace_scatter_value_index_add_and_fill():
    x, t = both(A)
    idx = np.array([[0, 1, 2, 3, 0]])
    same(x.clone().scatter_(0, lepton.tensor(idx), 7.5), t.clone().scatter_(0, torch.tensor(idx), 7.5))
    src = RNG.standard_normal((4, 3))
    i = [4, 0, 4]
    same(x.clone().index_add_(1, lepton.tensor(i), lepton.tensor(src), alpha=2),
         t.clone().index_add_(1, torch.tensor(i), torch.tensor(src), alpha=2))
    same(x.index_fill(1, lepton.tensor([1, 3]), -1.0), t.index_fill(1, torch.tensor([1, 3]), -1.0))


# ---- sort / topk / cumsum ------------------------------------------------------------------------

@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("dim", [0, 1])
def test_sort_matches_torch_stable_with_ties_and_nan(descending, dim):
    a = RNG.integers(0, 3, size=(6, 5)).astype(np.float64)
    a[2, 3] = np.nan
    x, t = both(a)
    v, i = x.sort(dim=dim, descending=descending)
    tv, ti = t.sort(dim=dim, descending=descending, stable=True)
    np.testing.assert_array_equal(v.numpy(), tv.numpy())
    same(i, ti, exact=True)
    same(x.argsort(dim, descending=descending), ti, exact=True)


def test_sort_and_topk_gradients_flow_through_the_permutation():
    grads_match(lambda x, m: x.sort(1, descending=True).values, A)
    grads_match(lambda x, m: m.topk(x, 2, dim=0).values, A)
    grads_match(lambda x, m: x.topk(3, largest=False)[0], A)


@pytest.mark.parametrize("dtype", ["int64", "int32", "uint8", "float32"])
def test_topk_and_sort_across_dtypes(dtype):
    a = RNG.integers(0, 100, size=(3, 7)).astype(dtype)
    x, t = both(a)
    v, i = x.topk(3)
    tv, ti = t.topk(3)
    same(v, tv, exact=True)
    same(i, ti, exact=True)


def test_topk_bad_k():
    with pytest.raises(IndexError, match="out of range"):
        lepton.tensor(A).topk(6)


@pytest.mark.parametrize("dim", [0, 1])
def test_cumsum_values_dtypes_and_gradient(dim):
    grads_match(lambda x, m: x.cumsum(dim), A)
    ints = RNG.integers(-5, 5, size=(3, 4)).astype(np.int32)
    x, t = both(ints)
    same(x.cumsum(dim), t.cumsum(dim), exact=True)  # int32 -> int64, as torch
    same(lepton.cumsum(lepton.tensor([True, False, True]), 0), torch.cumsum(torch.tensor([True, False, True]), 0), True)


# ---- masking, triangles, repeats, flips -----------------------------------------------------------

def test_masked_fill_and_select():
    mask = A > 0.3
    grads_match(lambda x, m, mk: x.masked_fill(m.tensor(mk), -math.inf).exp(), A, mask)
    grads_match(lambda x, m, mk: x.masked_fill(m.tensor(mk[0]), 2.0), A, mask)  # broadcast mask
    x, t = both(A)
    same(x.masked_select(lepton.tensor(mask)), t.masked_select(torch.tensor(mask)))
    with pytest.raises(TypeError, match="bool"):
        x.masked_fill(lepton.tensor(mask.astype(np.float32)), 0.0)
    y = x.clone()
    y.masked_fill_(lepton.tensor(mask), 0.0)
    same(y, t.masked_fill(torch.tensor(mask), 0.0))


@pytest.mark.parametrize("k", [-1, 0, 2])
def test_tril_triu(k):
    grads_match(lambda x, m: x.tril(k), A)
    grads_match(lambda x, m: m.triu(x, k), A)
    ones = np.ones((2, 3, 4))
    same(lepton.tensor(ones).tril(k), torch.tensor(ones).tril(k))


@pytest.mark.parametrize("sizes", [(2, 3), (2, 1, 2), (1, 1)])
def test_repeat(sizes):
    grads_match(lambda x, m: x.repeat(*sizes), A[:2, :3])


def test_repeat_interleave_forms():
    grads_match(lambda x, m: x.repeat_interleave(2, dim=0), A)
    grads_match(lambda x, m: x.repeat_interleave(m.tensor([1, 0, 2, 1, 3]), dim=1), A)
    x, t = both(A)
    same(x.repeat_interleave(3), t.repeat_interleave(3))


def test_flip_roll():
    grads_match(lambda x, m: x.flip(0, 1), A)
    grads_match(lambda x, m: x.roll(2, 1), A)
    grads_match(lambda x, m: x.roll((1, -2), (0, 1)), A)
    grads_match(lambda x, m: x.roll(3), A)


# ---- products, norms, predicates, constructors ---------------------------------------------------

def test_matrix_product_family():
    b, v = RNG.standard_normal((5, 3)), RNG.standard_normal(5)
    x, t = both(A)
    same(x.mm(lepton.tensor(b)), t.mm(torch.tensor(b)))
    same(x.mv(lepton.tensor(v)), t.mv(torch.tensor(v)))
    same(lepton.tensor(v).dot(lepton.tensor(v)), torch.tensor(v).dot(torch.tensor(v)))
    same(lepton.outer(lepton.tensor(v), lepton.tensor(v)), torch.outer(torch.tensor(v), torch.tensor(v)))
    b1, b2, c = RNG.standard_normal((2, 3, 4)), RNG.standard_normal((2, 4, 5)), RNG.standard_normal((3, 5))
    same(lepton.baddbmm(lepton.tensor(c), lepton.tensor(b1), lepton.tensor(b2), beta=0.5, alpha=2),
         torch.baddbmm(torch.tensor(c), torch.tensor(b1), torch.tensor(b2), beta=0.5, alpha=2))
    with pytest.raises(RuntimeError, match="2-D"):
        x.mm(lepton.tensor(v))


@pytest.mark.parametrize("p", ["fro", 1, 2, 3, math.inf, -math.inf, 0])
def test_norm(p):
    grads_match(lambda x, m: x.norm(p, dim=1) if p != 0 else x.norm(p, dim=1).detach() + x.sum() * 0, A)
    x, t = both(A)
    same(x.norm(p), t.norm(p))


def test_predicates_and_nan_to_num():
    a = np.array([1.0, np.nan, np.inf, -np.inf, -2.0])
    x, t = both(a)
    for name in ("isnan", "isinf", "isfinite"):
        same(getattr(x, name)(), getattr(t, name)(), exact=True)
    same(x.nan_to_num(), t.nan_to_num(), exact=True)
    same(x.nan_to_num(0.5, 9.0, -9.0), t.nan_to_num(0.5, 9.0, -9.0), exact=True)
    assert lepton.allclose(lepton.tensor([1.0, 2.0]), lepton.tensor([1.0, 2.0 + 1e-9]))
    assert not lepton.allclose(lepton.tensor([1.0]), lepton.tensor([1.1]))
    assert lepton.equal(lepton.tensor([1, 2]), lepton.tensor([1, 2])) and not lepton.equal(lepton.tensor([1]),
                                                                                           lepton.tensor([1, 2]))


def test_new_constructors_type_as_and_typed_tensors():
    x = lepton.tensor(A, dtype=lepton.float32)
    assert x.new_zeros(2, 3).dtype == lepton.float32 and x.new_ones((2,)).numpy().tolist() == [1, 1]
    assert x.new_full((2, 2), 7).numpy().tolist() == [[7, 7], [7, 7]]
    assert x.new_tensor([1, 2]).dtype == lepton.float32
    assert lepton.tensor([1, 2]).type_as(x).dtype == lepton.float32
    assert lepton.LongTensor([1, 2]).dtype == lepton.int64 and lepton.FloatTensor(2, 3).shape == (2, 3)
    same(lepton.eye(3, 4), torch.eye(3, 4), exact=True)


def test_data_alias_and_format():
    p = lepton.nn.Parameter(lepton.ones(3))
    p.data.mul_(2)  # bypasses autograd, changes p
    assert p.numpy().tolist() == [2, 2, 2] and p.requires_grad and p.grad_fn is None
    p.data = lepton.zeros(3)
    assert p.numpy().tolist() == [0, 0, 0]
    with pytest.raises(NotImplementedError, match="shape"):
        p.data = lepton.zeros(4)
    assert f"{lepton.tensor(3.14159):.2f}" == "3.14" and f"{lepton.tensor([2.5]):.1f}" == "2.5"
    assert f"{lepton.tensor([1, 2])}".startswith("tensor(")


# ---- random draws --------------------------------------------------------------------------------

def test_multinomial_distribution_and_rules():
    lepton.manual_seed(0)
    probs = lepton.tensor([0.1, 0.0, 0.6, 0.3])
    draws = probs.multinomial(20000, replacement=True).numpy()
    freq = np.bincount(draws, minlength=4) / draws.size
    np.testing.assert_allclose(freq, [0.1, 0.0, 0.6, 0.3], atol=0.015)
    rows = lepton.tensor([[1.0, 1.0, 0.0, 5.0], [0.0, 2.0, 2.0, 0.0]])
    picks = rows.multinomial(2).numpy()
    assert set(picks[1]) == {1, 2} and len(set(picks[0])) == 2 and 2 not in picks[0]
    firsts = np.array([lepton.tensor([1.0, 3.0]).multinomial(1).item() for _ in range(2000)])
    assert abs(firsts.mean() - 0.75) < 0.04
    with pytest.raises(RuntimeError, match="without replacement"):
        rows.multinomial(5)
    with pytest.raises(RuntimeError, match="nan|< 0"):
        lepton.tensor([0.5, -0.1]).multinomial(1)


def test_generators_are_independent_reproducible_streams():
    g1 = lepton.Generator().manual_seed(42)
    a = lepton.randn(5, generator=g1)
    lepton.manual_seed(7)
    g2 = lepton.Generator().manual_seed(42)
    glob = lepton.randn(3)
    b = lepton.randn(5, generator=g2)
    lepton.manual_seed(7)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_array_equal(glob.numpy(), lepton.randn(3).numpy())  # g2's draw left the global stream alone
    perm = lepton.randperm(10, generator=lepton.Generator().manual_seed(3)).numpy()
    assert sorted(perm.tolist()) == list(range(10))
    assert lepton.manual_seed(5) is lepton.default_generator and lepton.initial_seed() == 5
