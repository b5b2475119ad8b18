"""lepton.nn.init against torch.nn.init: the same names, gains and fans; the random initialisers'
samples against their distributions (moments and bounds, beside torch's samples); eye_, dirac_
exactly, orthogonal_ and sparse_ by their properties; bad input raising as torch's does."""

import math
import warnings

import numpy as np
import pytest

import lepton
from lepton.nn import init

torch = pytest.importorskip("torch")
tinit = torch.nn.init


def test_every_torch_name_exists():
    missing = [name for name in tinit.__all__ if not callable(getattr(init, name, None))]
    assert not missing
    assert callable(init._calculate_fan_in_and_fan_out)


GAINS = [("linear", None), ("conv1d", None), ("conv2d", None), ("conv3d", None), ("conv_transpose1d", None),
         ("conv_transpose2d", None), ("conv_transpose3d", None), ("sigmoid", None), ("tanh", None), ("relu", None),
         ("leaky_relu", None), ("leaky_relu", 0.2), ("leaky_relu", 3), ("selu", None)]


@pytest.mark.parametrize("nonlinearity,param", GAINS)
def test_calculate_gain_matches_torch(nonlinearity, param):
    assert init.calculate_gain(nonlinearity, param) == pytest.approx(tinit.calculate_gain(nonlinearity, param),
                                                                     rel=1e-15)


def test_calculate_gain_bad_input():
    for lib in (init, tinit):
        with pytest.raises(ValueError, match="Unsupported nonlinearity"):
            lib.calculate_gain("swish")
        with pytest.raises(ValueError, match="negative_slope"):
            lib.calculate_gain("leaky_relu", True)
        with pytest.raises(ValueError, match="negative_slope"):
            lib.calculate_gain("leaky_relu", "0.1")


@pytest.mark.parametrize("shape", [(3, 5), (8, 4, 3), (16, 3, 5, 5), (2, 6, 3, 2, 2), (0, 4)])
def test_fans_match_torch(shape):
    assert init._calculate_fan_in_and_fan_out(lepton.empty(*shape)) == \
        tinit._calculate_fan_in_and_fan_out(torch.empty(*shape))


def test_fans_need_two_dimensions():
    for lib, t in ((init, lepton.empty(5)), (tinit, torch.empty(5))):
        with pytest.raises(ValueError, match="fewer than 2 dimensions"):
            lib._calculate_fan_in_and_fan_out(t)


def samples(lib, fn, shape, *args, **kwargs):
    t = (lepton if lib is init else torch).empty(*shape)
    out = getattr(lib, fn)(t, *args, **kwargs)
    assert out is t  # in place, returning its argument
    return t.detach().numpy().astype(np.float64).ravel()


def check_moments(values, mean, std, low=-math.inf, high=math.inf):
    n = values.size
    assert values.min() >= low and values.max() <= high
    assert abs(values.mean() - mean) < 5 * std / math.sqrt(n)
    assert values.std() == pytest.approx(std, rel=0.02)


# (function, shape, args, kwargs, (mean, std, low, high) of its distribution)
SHAPE = (400, 250)
FAN_IN, FAN_OUT = 250, 400
UNIFORM_CASES = [
    ("uniform_", (), {}, (0.5, math.sqrt(1 / 12), 0.0, 1.0)),
    ("uniform_", (-3.0, 1.0), {}, (-1.0, 4 / math.sqrt(12), -3.0, 1.0)),
    ("normal_", (), {}, (0.0, 1.0, -math.inf, math.inf)),
    ("normal_", (2.0, 0.3), {}, (2.0, 0.3, -math.inf, math.inf)),
    ("xavier_uniform_", (), {}, (0.0, math.sqrt(2 / (FAN_IN + FAN_OUT)), -math.sqrt(6 / (FAN_IN + FAN_OUT)),
                                 math.sqrt(6 / (FAN_IN + FAN_OUT)))),
    ("xavier_uniform_", (), dict(gain=math.sqrt(2)), (0.0, 2 / math.sqrt(FAN_IN + FAN_OUT),
                                                      -math.sqrt(12 / (FAN_IN + FAN_OUT)),
                                                      math.sqrt(12 / (FAN_IN + FAN_OUT)))),
    ("xavier_normal_", (), dict(gain=5 / 3), (0.0, 5 / 3 * math.sqrt(2 / (FAN_IN + FAN_OUT)), -math.inf, math.inf)),
    ("kaiming_uniform_", (), dict(nonlinearity="relu"), (0.0, math.sqrt(2 / FAN_IN), -math.sqrt(6 / FAN_IN),
                                                         math.sqrt(6 / FAN_IN))),
    ("kaiming_uniform_", (), dict(a=math.sqrt(5)), (0.0, math.sqrt(1 / 3 / FAN_IN), -1 / math.sqrt(FAN_IN),
                                                    1 / math.sqrt(FAN_IN))),
    ("kaiming_normal_", (), dict(mode="fan_out", nonlinearity="relu"), (0.0, math.sqrt(2 / FAN_OUT), -math.inf,
                                                                        math.inf)),
    ("kaiming_normal_", (0.1,), dict(mode="fan_in"), (0.0, math.sqrt(2 / 1.01 / FAN_IN), -math.inf, math.inf)),
    ("kaiming_normal_", (), dict(nonlinearity="tanh", mode="fan_out"), (0.0, 5 / 3 / math.sqrt(FAN_OUT), -math.inf,
                                                                        math.inf)),
]


@pytest.mark.parametrize("fn,args,kwargs,dist", UNIFORM_CASES, ids=[f"{c[0]}{c[1]}{c[2]}" for c in UNIFORM_CASES])
def test_random_initialisers_draw_their_distribution(fn, args, kwargs, dist):
    lepton.manual_seed(0)
    torch.manual_seed(0)
    for lib in (init, tinit):  # torch's samples pass the same check, so the check is torch's distribution
        check_moments(samples(lib, fn, SHAPE, *args, **kwargs), *dist)


def truncated_normal_moments(mean, std, a, b):
    alpha, beta = (a - mean) / std, (b - mean) / std
    pdf = lambda x: math.exp(-x * x / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    cdf = lambda x: (1 + math.erf(x / math.sqrt(2))) / 2  # noqa: E731
    z = cdf(beta) - cdf(alpha)
    m = (pdf(alpha) - pdf(beta)) / z
    var = 1 + (alpha * pdf(alpha) - beta * pdf(beta)) / z - m * m
    return mean + std * m, std * math.sqrt(var), a, b


@pytest.mark.parametrize("args", [(), (0.5, 2.0, -1.0, 3.0), (0.0, 1.0, 1.5, 2.5), (0.0, 1.0, 2.0, 3.0),
                                  (1.0, 0.5, -0.5, 0.0)], ids=str)
def test_trunc_normal_draws_the_truncated_normal(args):
    """Both regimes: wide [a, b] (redrawn normals) and narrow or in the tail (uniform proposals)."""
    mean, std, a, b = args if args else (0.0, 1.0, -2.0, 2.0)
    lepton.manual_seed(1)
    torch.manual_seed(1)
    expected = truncated_normal_moments(mean, std, a, b)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the far case warns (tested below)
        for lib in (init, tinit):
            check_moments(samples(lib, "trunc_normal_", SHAPE, *args), *expected)


def test_trunc_normal_warns_far_from_the_mean_and_checks_bounds():
    for lib, t in ((init, lepton.empty(50)), (tinit, torch.empty(50))):
        with pytest.warns(UserWarning, match="mean is more than 2 std from"):
            lib.trunc_normal_(t, mean=0.0, std=1.0, a=3.0, b=5.0)
        assert float(t.min()) >= 3.0 and float(t.max()) <= 5.0
    with pytest.raises(ValueError, match="a < b"):
        init.trunc_normal_(lepton.empty(5), a=1.0, b=-1.0)


@pytest.mark.parametrize("shape", [(3, 3), (3, 5), (6, 2), (1, 4)])
def test_eye_matches_torch(shape):
    np.testing.assert_array_equal(init.eye_(lepton.full(shape, 7.0)).numpy(),
                                  tinit.eye_(torch.full(shape, 7.0)).numpy())


@pytest.mark.parametrize("shape,groups", [((4, 4, 3), 1), ((6, 3, 5), 1), ((2, 5, 3, 3), 1), ((6, 4, 3, 3), 2),
                                          ((6, 2, 4, 2), 3), ((4, 4, 3, 3, 3), 1), ((8, 3, 3, 1, 5), 4)])
def test_dirac_matches_torch(shape, groups):
    np.testing.assert_array_equal(init.dirac_(lepton.full(shape, 7.0), groups).numpy(),
                                  tinit.dirac_(torch.full(shape, 7.0), groups).numpy())


def test_dirac_preserves_the_input_through_a_conv():
    weight = init.dirac_(lepton.empty(3, 3, 3, 3))
    x = lepton.randn(2, 3, 8, 8)
    np.testing.assert_allclose(lepton.nn.functional.conv2d(x, weight, padding=1).numpy(), x.numpy(), atol=1e-6)


@pytest.mark.parametrize("shape", [(6, 6), (8, 3), (3, 8), (4, 2, 3), (5, 3, 2, 2), (1, 7), (7, 1)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_orthogonal_is_semi_orthogonal(shape, dtype):
    t = lepton.empty(*shape, dtype=getattr(lepton, dtype))
    init.orthogonal_(t, gain=1.5)
    m = t.numpy().reshape(shape[0], -1).astype(np.float64)
    gram = m.T @ m if m.shape[0] >= m.shape[1] else m @ m.T
    np.testing.assert_allclose(gram, 2.25 * np.eye(gram.shape[0]), atol=1e-5 if dtype == "float32" else 1e-12)


def test_orthogonal_is_haar_distributed_as_torchs():
    """Entries of a Haar orthogonal n x n matrix have mean 0 and variance 1/n, and R's positive
    diagonal leaves no sign bias in the first column; torch's draws pass the same checks."""
    n, draws = 8, 400
    lepton.manual_seed(2)
    torch.manual_seed(2)
    for lib, make in ((init, lepton.empty), (tinit, torch.empty)):
        qs = np.stack([lib.orthogonal_(make(n, n)).numpy() for _ in range(draws)]).astype(np.float64)
        assert abs(qs.mean()) < 5 / math.sqrt(n * n * draws) * math.sqrt(1 / n)
        assert (qs ** 2).mean() == pytest.approx(1 / n, rel=1e-6)  # exactly, as every row has norm 1
        assert qs[:, :, 0].var() == pytest.approx(1 / n, rel=0.1)
        assert abs((qs[:, 0, 0] > 0).mean() - 0.5) < 0.1
    lepton.manual_seed(3)
    a = init.orthogonal_(lepton.empty(5, 4)).numpy()
    lepton.manual_seed(3)
    np.testing.assert_array_equal(a, init.orthogonal_(lepton.empty(5, 4)).numpy())
    assert not np.array_equal(a, init.orthogonal_(lepton.empty(5, 4)).numpy())


@pytest.mark.parametrize("shape,sparsity", [((20, 30), 0.1), ((7, 5), 0.5), ((10, 4), 0.0), ((3, 6), 1.0)])
def test_sparse_zeroes_a_fraction_of_every_column(shape, sparsity):
    zeros = math.ceil(sparsity * shape[0])
    for lib, make in ((init, lepton.empty), (tinit, torch.empty)):
        t = lib.sparse_(make(*shape), sparsity, std=0.05).numpy()
        assert ((t == 0).sum(axis=0) == zeros).all()
    lepton.manual_seed(4)
    big = init.sparse_(lepton.empty(200, 300), 0.25, std=0.05).numpy()
    nonzero = big[big != 0]
    assert nonzero.size == 150 * 300 and nonzero.std() == pytest.approx(0.05, rel=0.02)
    zero_rows = [set(np.flatnonzero(big[:, j] == 0)) for j in range(300)]
    assert len({frozenset(z) for z in zero_rows}) > 290  # each column draws its own rows
    assert (big == 0).mean(axis=1).std() < 0.1  # and no row is favoured


@pytest.mark.parametrize("fn,args", [("constant_", (0.25,)), ("zeros_", ()), ("ones_", ())])
def test_constant_fills_match_torch(fn, args):
    np.testing.assert_array_equal(getattr(init, fn)(lepton.empty(3, 4), *args).numpy(),
                                  getattr(tinit, fn)(torch.empty(3, 4), *args).numpy())


def test_inits_record_no_graph():
    w = lepton.nn.Parameter(lepton.empty(4, 4))
    for fn in (init.orthogonal_, init.eye_, init.xavier_uniform_, init.trunc_normal_, lambda t: init.sparse_(t, 0.5),
               lambda t: init.dirac_(t.view(4, 4, 1))):
        fn(w)
        assert w.is_leaf and w.grad_fn is None and w.requires_grad


GENERATOR_CASES = [("uniform_", ()), ("normal_", (1.0, 2.0)), ("xavier_uniform_", ()), ("xavier_normal_", ()),
                   ("kaiming_uniform_", ()), ("kaiming_normal_", ()), ("trunc_normal_", ()),
                   ("trunc_normal_", (0.0, 1.0, 2.0, 3.0)), ("orthogonal_", ()), ("sparse_", (0.5,))]


@pytest.mark.parametrize("fn,args", GENERATOR_CASES, ids=[f"{c[0]}{c[1]}" for c in GENERATOR_CASES])
def test_a_generator_gives_its_own_reproducible_stream(fn, args):
    """generator=g draws from g alone: the same seed gives the same values, and the global stream
    is left where it was."""
    def draw(generator):
        return getattr(init, fn)(lepton.empty(6, 5), *args, generator=generator).numpy()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lepton.manual_seed(5)
        first = draw(lepton.Generator().manual_seed(11))
        after = lepton.rand(3).numpy()
        lepton.manual_seed(6)
        np.testing.assert_array_equal(draw(lepton.Generator().manual_seed(11)), first)
        lepton.manual_seed(5)
        np.testing.assert_array_equal(lepton.rand(3).numpy(), after)  # the generator's draws took nothing from it
        assert not np.array_equal(draw(lepton.Generator().manual_seed(12)), first)
    with pytest.raises(TypeError, match="generator must be a lepton.Generator"):
        draw(object())


@pytest.mark.parametrize("old", ["uniform", "normal", "constant", "eye", "dirac", "xavier_uniform", "xavier_normal",
                                 "kaiming_uniform", "kaiming_normal", "orthogonal", "sparse"])
def test_deprecated_aliases_warn_as_torch(old):
    args = {"constant": (0.5,), "sparse": (0.5,)}.get(old, ())
    shape = (4, 4, 3) if old == "dirac" else (4, 3)
    for lib, make in ((init, lepton.empty), (tinit, torch.empty)):
        with pytest.warns(FutureWarning, match=f"nn.init.{old}` is now deprecated in favor of `nn.init.{old}_"):
            getattr(lib, old)(make(*shape), *args)


@pytest.mark.parametrize("fn,shape,args,match", [
    ("eye_", (2, 3, 4), (), "Only tensors with 2 dimensions"), ("eye_", (5,), (), "Only tensors with 2 dimensions"),
    ("dirac_", (3, 3), (), "Only tensors with 3, 4, or 5 dimensions"),
    ("dirac_", (5, 3, 3), (2,), "dim 0 must be divisible by groups"),
    ("orthogonal_", (6,), (), "Only tensors with 2 or more dimensions"),
    ("sparse_", (2, 3, 4), (0.5,), "Only tensors with 2 dimensions"),
    ("kaiming_uniform_", (3, 4), (0, "fan_avg"), "Mode fan_avg not supported"),
    ("kaiming_normal_", (3, 4), (0, "fan_in", "swish"), "Unsupported nonlinearity"),
    ("xavier_uniform_", (7,), (), "fewer than 2 dimensions"),
])
def test_bad_input_raises_value_error_like_torch(fn, shape, args, match):
    for lib, make in ((init, lepton.empty), (tinit, torch.empty)):
        with pytest.raises(ValueError, match=match):
            getattr(lib, fn)(make(*shape), *args)
    with pytest.raises(ValueError, match="groups must be a positive int"):
        init.dirac_(lepton.empty(4, 4, 3), groups=0)


def test_empty_tensors_are_left_alone():
    for fn in (init.kaiming_uniform_, init.kaiming_normal_):
        with pytest.warns(UserWarning, match="zero-element"):
            assert tuple(fn(lepton.empty(0, 3)).shape) == (0, 3)
    assert tuple(init.orthogonal_(lepton.empty(0, 3)).shape) == (0, 3)
