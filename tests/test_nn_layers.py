"""lepton.nn layers and init: forward and backward against torch with the same weights, init statistics,
and a small MLP trained end to end."""

import math
import warnings

import numpy as np
import pytest

import lepton
from lepton import nn
from lepton.nn import functional as F, init
from conftest import assert_close

torch = pytest.importorskip("torch")

F64 = dict(rtol=1e-7, atol=1e-9)


def to_torch(t):
    return torch.from_numpy(np.array(t.detach().numpy(), copy=True))


def check_against_torch(layer, torch_layer, x_np, seed=0):
    """Same weights and input in float64: outputs, input gradient and parameter gradients must agree."""
    layer.double()
    torch_layer.double()
    names = [n for n, _ in layer.named_parameters()]
    assert names == [n for n, _ in torch_layer.named_parameters()]
    with torch.no_grad():
        for p, tp in zip(layer.parameters(), torch_layer.parameters()):
            tp.copy_(to_torch(p))
    x = lepton.tensor(x_np, requires_grad=True)
    tx = torch.tensor(x_np, requires_grad=True)
    out, tout = layer(x), torch_layer(tx)
    assert_close(out, tout.detach(), **F64)
    g = np.random.default_rng(seed).standard_normal(tout.shape)
    (out * lepton.tensor(g)).sum().backward()
    tout.backward(torch.from_numpy(g))
    assert_close(x.grad, tx.grad, **F64)
    for name, p, tp in zip(names, layer.parameters(), torch_layer.parameters()):
        assert p.grad is not None, f"no gradient reached {name}"
        assert_close(p.grad, tp.grad, **F64)


def sample(*shape, scale=2.0, seed=0):
    return np.random.default_rng(seed).standard_normal(shape) * scale


LAYERS = {
    "linear": (lambda ns: ns.Linear(5, 4), (3, 5)),
    "linear_3d_nobias": (lambda ns: ns.Linear(5, 4, bias=False), (2, 3, 5)),
    "linear_1d": (lambda ns: ns.Linear(5, 2), (5,)),
    "identity": (lambda ns: ns.Identity(7, unused=True), (2, 3)),
    "flatten": (lambda ns: ns.Flatten(), (2, 3, 4)),
    "flatten_0_1": (lambda ns: ns.Flatten(0, 1), (2, 3, 4)),
    "unflatten": (lambda ns: ns.Unflatten(1, (2, -1)), (4, 6)),
    "unflatten_neg": (lambda ns: ns.Unflatten(-1, (3, 2)), (2, 4, 6)),
    "relu": (lambda ns: ns.ReLU(), (4, 5)),
    "gelu": (lambda ns: ns.GELU(), (4, 5)),
    "gelu_tanh": (lambda ns: ns.GELU(approximate="tanh"), (4, 5)),
    "silu": (lambda ns: ns.SiLU(), (4, 5)),
    "tanh": (lambda ns: ns.Tanh(), (4, 5)),
    "sigmoid": (lambda ns: ns.Sigmoid(), (4, 5)),
    "softmax": (lambda ns: ns.Softmax(dim=1), (4, 5)),
    "softmax_last_3d": (lambda ns: ns.Softmax(dim=-1), (2, 3, 4)),
    "log_softmax": (lambda ns: ns.LogSoftmax(dim=1), (4, 5)),
    "log_softmax_dim0": (lambda ns: ns.LogSoftmax(dim=0), (4, 5)),
    "sequential_mlp": (lambda ns: ns.Sequential(ns.Linear(6, 8), ns.GELU(), ns.Linear(8, 3), ns.LogSoftmax(dim=1)),
                       (5, 6)),
}


@pytest.mark.parametrize("name", list(LAYERS))
def test_layer_matches_torch(name):
    build, shape = LAYERS[name]
    check_against_torch(build(nn), build(torch.nn), sample(*shape))


def test_inplace_activations_match_torch():
    x_np = sample(3, 4)
    for name in ("relu", "silu"):
        x = lepton.tensor(x_np)
        out = getattr(nn, {"relu": "ReLU", "silu": "SiLU"}[name])(inplace=True)(x)
        assert_close(x, getattr(torch.nn.functional, name)(torch.from_numpy(x_np)), **F64)
        assert_close(out, x, **F64)


def test_softmax_is_stable_and_sums_to_one():
    x_np = np.array([[1000.0, 0.0, -1000.0], [-5000.0, -5000.0, -5000.0]])
    x = lepton.tensor(x_np, dtype=lepton.float32)
    p, logp = F.softmax(x, dim=1), F.log_softmax(x, dim=1)
    assert np.isfinite(logp.numpy()).all() and np.isfinite(p.numpy()).all()
    assert_close(p, torch.softmax(torch.tensor(x_np, dtype=torch.float32), 1))
    assert_close(logp, torch.log_softmax(torch.tensor(x_np, dtype=torch.float32), 1))
    with pytest.warns(UserWarning, match="Implicit dimension choice for softmax"):
        implicit = nn.Softmax()(x)
    assert_close(implicit, p)


def test_gelu_rejects_unknown_approximation():
    with pytest.raises(ValueError, match="approximate"):
        nn.GELU(approximate="fast")
    with pytest.raises(ValueError, match="approximate"):
        F.gelu(lepton.ones(2), approximate="fast")


def test_unflatten_errors():
    with pytest.raises(IndexError, match="out of range"):
        nn.Unflatten(3, (2, 2))(lepton.ones(2, 4))
    with pytest.raises(TypeError, match="unflattened_size"):
        nn.Unflatten(1, 4)


# ---- Dropout -------------------------------------------------------------------------------

def test_dropout_train_statistics_and_gradient():
    p = 0.3
    layer = nn.Dropout(p)
    x = lepton.ones(200, 500, requires_grad=True)
    out = layer(x)
    values = out.detach().numpy()
    kept = values != 0
    assert abs(1 - kept.mean() - p) < 0.01
    np.testing.assert_allclose(values[kept], 1 / (1 - p), rtol=1e-6)
    out.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), values)  # d(x·mask·scale)/dx = mask·scale
    lepton.manual_seed(3)
    a = layer(lepton.ones(50)).numpy()
    lepton.manual_seed(3)
    np.testing.assert_array_equal(layer(lepton.ones(50)).numpy(), a)


def test_dropout_eval_edges_and_validation():
    x = lepton.randn(4, 5)
    layer = nn.Dropout(0.5).eval()
    assert layer(x) is x
    assert F.dropout(x, 0.0) is x
    assert float(F.dropout(x, 1.0).abs().sum()) == 0
    y = lepton.ones(1000)
    F.dropout(y, 0.5, inplace=True)
    assert set(np.unique(y.numpy())) <= {0.0, 2.0}
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="between 0 and 1"):
            nn.Dropout(bad)
        with pytest.raises(ValueError, match="between 0 and 1"):
            F.dropout(x, bad)


# ---- init ----------------------------------------------------------------------------------

def test_calculate_gain_matches_torch():
    for args in [("linear",), ("conv2d",), ("sigmoid",), ("tanh",), ("relu",), ("leaky_relu",), ("leaky_relu", 0.2),
                 ("selu",)]:
        assert init.calculate_gain(*args) == pytest.approx(torch.nn.init.calculate_gain(*args))
    with pytest.raises(ValueError, match="Unsupported nonlinearity"):
        init.calculate_gain("swish")
    with pytest.raises(ValueError, match="not a valid number"):
        init.calculate_gain("leaky_relu", "0.1")


@pytest.mark.parametrize("fn, kwargs, shape, std, bound", [
    (init.xavier_uniform_, {}, (300, 200), math.sqrt(2 / 500), math.sqrt(6 / 500)),
    (init.xavier_normal_, {"gain": 2.0}, (300, 200), 2 * math.sqrt(2 / 500), None),
    (init.kaiming_uniform_, {"a": math.sqrt(5)}, (64, 32, 3, 3), 1 / math.sqrt(288 * 3), 1 / math.sqrt(288)),
    (init.kaiming_normal_, {"mode": "fan_out", "nonlinearity": "relu"}, (64, 32, 3, 3), math.sqrt(2 / 576), None),
    (init.uniform_, {"a": -2.0, "b": 2.0}, (100, 100), 4 / math.sqrt(12), 2.0),
    (init.normal_, {"mean": 0.0, "std": 0.02}, (100, 100), 0.02, None),
    (init.trunc_normal_, {"std": 1.0, "a": -1.0, "b": 1.0}, (100, 100), 0.5395, 1.0),
])
def test_init_statistics(fn, kwargs, shape, std, bound):
    w = nn.Parameter(lepton.empty(shape))
    assert fn(w, **kwargs) is w
    assert w.is_leaf and w.requires_grad and w.grad_fn is None  # initialised without recording a graph
    values = w.detach().numpy()
    assert abs(values.std() - std) < 0.03 * std
    assert abs(values.mean()) < 0.05 * std
    if bound is not None:
        assert np.abs(values).max() <= bound


def test_init_reproducible_with_manual_seed():
    def draw():
        lepton.manual_seed(123)
        return [init.kaiming_uniform_(lepton.empty(8, 4)).numpy(), init.trunc_normal_(lepton.empty(50)).numpy(),
                nn.Linear(6, 3).weight.detach().numpy()]

    for a, b in zip(draw(), draw()):
        np.testing.assert_array_equal(a, b)


def test_constant_inits_and_errors():
    w = lepton.empty(3, 4)
    np.testing.assert_array_equal(init.constant_(w, 0.5).numpy(), np.full((3, 4), 0.5))
    np.testing.assert_array_equal(init.zeros_(w).numpy(), np.zeros((3, 4)))
    np.testing.assert_array_equal(init.ones_(w).numpy(), np.ones((3, 4)))
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init.xavier_uniform_(lepton.empty(5))
    with pytest.raises(ValueError, match="Mode fan_avg not supported"):
        init.kaiming_normal_(w, mode="fan_avg")
    with pytest.raises(ValueError, match="a < b"):
        init.trunc_normal_(w, a=1.0, b=-1.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        init.kaiming_uniform_(lepton.empty(0, 3))
    assert "zero-element" in str(caught[0].message)


def test_linear_default_initialisation():
    layer = nn.Linear(400, 300)
    bound = 1 / math.sqrt(400)
    w, b = layer.weight.detach().numpy(), layer.bias.detach().numpy()
    assert w.shape == (300, 400) and b.shape == (300,)
    assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.02 * bound
    assert nn.Linear(4, 2, bias=False).bias is None
    assert nn.Linear(4, 2, dtype=lepton.float64).weight.dtype == lepton.float64
    assert [n for n, _ in nn.Linear(4, 2).named_parameters()] == ["weight", "bias"]


# ---- end to end ----------------------------------------------------------------------------

def test_mlp_learns_blobs_with_manual_sgd():
    """Linear→ReLU→Linear on three Gaussian blobs, full-batch SGD: loss must fall below 0.05."""
    rng = np.random.default_rng(0)
    centers = np.array([[0.0, 3.0], [3.0, -2.0], [-3.0, -2.0]])
    labels = rng.integers(0, 3, size=300)
    x = lepton.tensor((centers[labels] + rng.standard_normal((300, 2)) * 0.7).astype(np.float32))
    y = lepton.tensor(labels.astype(np.int64))
    lepton.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 3))
    first = None
    for _ in range(150):
        loss = F.cross_entropy(model(x), y)
        first = loss.item() if first is None else first
        model.zero_grad()
        loss.backward()
        with lepton.no_grad():
            for p in model.parameters():
                p.sub_(p.grad * 0.5)
    assert first > 0.5
    assert loss.item() < 0.05
    with lepton.no_grad():
        accuracy = (model(x).argmax(1) == y).float().mean().item()
    assert accuracy > 0.97
