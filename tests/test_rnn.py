"""RNN, LSTM, GRU and their cells against torch with the same weights (copied via numpy): outputs, final
states, and gradients of the input, the initial states and every parameter; init, dropout and bad inputs."""

import math
import warnings

import numpy as np
import pytest

import lepton
from lepton import nn
from conftest import assert_close

torch = pytest.importorskip("torch")

F64 = dict(rtol=1e-9, atol=1e-10)
F32 = dict(rtol=2e-5, atol=2e-6)


def to_torch(t):
    return torch.from_numpy(np.array(t.detach().numpy(), copy=True))


def copy_weights(layer, torch_layer):
    names = [n for n, _ in layer.named_parameters()]
    assert names == [n for n, _ in torch_layer.named_parameters()]
    with torch.no_grad():
        for p, tp in zip(layer.parameters(), torch_layer.parameters()):
            assert tuple(p.shape) == tuple(tp.shape)
            tp.copy_(to_torch(p))
    return names


def flat(out):
    """(output, h_n) / (output, (h_n, c_n)) / h / (h, c) as a flat list of tensors."""
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in flat(o)]
    return [out]


def check(layer, torch_layer, x_np, states_np=(), dtype="double", seed=0):
    """Same weights, input and initial states: every output, and gradients of all inputs and parameters."""
    getattr(layer, dtype)()
    getattr(torch_layer, dtype)()
    tol = F64 if dtype == "double" else F32
    names = copy_weights(layer, torch_layer)
    cast = np.float64 if dtype == "double" else np.float32
    ins = [lepton.tensor(a.astype(cast), requires_grad=True) for a in (x_np, *states_np)]
    tins = [torch.tensor(a.astype(cast), requires_grad=True) for a in (x_np, *states_np)]

    def hx(ts):
        return None if len(ts) == 1 else ts[1] if len(ts) == 2 else (ts[1], ts[2])

    outs, touts = flat(layer(ins[0], hx(ins))), flat(torch_layer(tins[0], hx(tins)))
    assert len(outs) == len(touts)
    rng = np.random.default_rng(seed)
    loss, tloss = 0, 0
    for o, to in zip(outs, touts):
        assert_close(o, to.detach(), **tol)
        g = rng.standard_normal(tuple(to.shape)).astype(cast)
        loss = loss + (o * lepton.tensor(g)).sum()
        tloss = tloss + (to * torch.from_numpy(g)).sum()
    loss.backward()
    tloss.backward()
    for i, (a, ta) in enumerate(zip(ins, tins)):
        assert a.grad is not None, f"no gradient reached input {i}"
        assert_close(a.grad, ta.grad, **tol)
    for name, p, tp in zip(names, layer.parameters(), torch_layer.parameters()):
        assert p.grad is not None, f"no gradient reached {name}"
        assert_close(p.grad, tp.grad, **tol)


def sample(*shape, seed=1):
    return np.random.default_rng(seed).standard_normal(shape)


# (kwargs, input shape (time-major unless batch_first), whether h0/c0 are passed)
CONFIGS = {
    "1layer": (dict(), (5, 3, 4), False),
    "h0": (dict(), (5, 3, 4), True),
    "2layer_bidir_h0": (dict(num_layers=2, bidirectional=True), (4, 2, 4), True),
    "3layer_batch_first": (dict(num_layers=3, batch_first=True), (2, 6, 4), True),
    "bidir_batch_first": (dict(bidirectional=True, batch_first=True), (3, 7, 4), False),
    "nobias_2layer_bidir": (dict(num_layers=2, bias=False, bidirectional=True), (3, 2, 4), True),
    "len1_batch1": (dict(), (1, 1, 4), True),
    "unbatched": (dict(num_layers=2), (5, 4), True),
    "unbatched_bidir_batch_first": (dict(bidirectional=True, batch_first=True), (5, 4), True),
}

HIDDEN = 7


def build(kind, kwargs, ns):
    if kind == "RNN_relu":
        return ns.RNN(4, HIDDEN, nonlinearity="relu", **kwargs)
    return getattr(ns, kind)(4, HIDDEN, **kwargs)


def state_shapes(kind, kwargs, x_shape, proj_size=0):
    count = kwargs.get("num_layers", 1) * (2 if kwargs.get("bidirectional") else 1)
    batch = () if len(x_shape) == 2 else (x_shape[0] if kwargs.get("batch_first") else x_shape[1],)
    h = (count, *batch, proj_size or HIDDEN)
    return [h, (count, *batch, HIDDEN)] if kind == "LSTM" else [h]


@pytest.mark.parametrize("kind", ["RNN", "RNN_relu", "LSTM", "GRU"])
@pytest.mark.parametrize("config", list(CONFIGS))
def test_layer_matches_torch(kind, config):
    kwargs, shape, with_state = CONFIGS[config]
    lepton.manual_seed(3)
    states = [sample(*s, seed=2 + i) for i, s in enumerate(state_shapes(kind, kwargs, shape))] if with_state else []
    check(build(kind, kwargs, nn), build(kind, kwargs, torch.nn), sample(*shape), states)


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_float32_matches_torch(kind):
    kwargs = dict(num_layers=2, bidirectional=True, batch_first=True)
    shape = (3, 11, 4)
    states = [sample(*s, seed=5) for s in state_shapes(kind, kwargs, shape)]
    check(build(kind, kwargs, nn), build(kind, kwargs, torch.nn), sample(*shape), states, dtype="float")


@pytest.mark.parametrize("kwargs", [dict(), dict(num_layers=2, bidirectional=True, batch_first=True)])
def test_lstm_projection_matches_torch(kwargs):
    shape = (3, 5, 4)
    states = [sample(*s, seed=7 + i) for i, s in enumerate(state_shapes("LSTM", kwargs, shape, proj_size=3))]
    check(nn.LSTM(4, HIDDEN, proj_size=3, **kwargs), torch.nn.LSTM(4, HIDDEN, proj_size=3, **kwargs),
          sample(*shape), states)


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_without_initial_state_matches_zero_state(kind):
    layer = getattr(nn, kind)(3, 5, num_layers=2)
    x = lepton.randn(4, 2, 3)
    zeros = lepton.zeros(2, 2, 5)
    a = flat(layer(x))
    b = flat(layer(x, (zeros, zeros) if kind == "LSTM" else zeros))
    for u, v in zip(a, b):
        assert_close(u, v.numpy(), rtol=0, atol=0)


@pytest.mark.parametrize("kind,nonlinearity", [("RNNCell", "tanh"), ("RNNCell", "relu"), ("LSTMCell", None),
                                               ("GRUCell", None)])
@pytest.mark.parametrize("batched,with_state,bias", [(True, True, True), (True, False, True), (False, True, True),
                                                     (True, True, False)])
def test_cell_matches_torch(kind, nonlinearity, batched, with_state, bias):
    def make(ns):
        extra = {} if nonlinearity is None else dict(nonlinearity=nonlinearity)
        return getattr(ns, kind)(4, HIDDEN, bias=bias, **extra)

    x_shape, h_shape = ((3, 4), (3, HIDDEN)) if batched else ((4,), (HIDDEN,))
    states = [sample(*h_shape, seed=9 + i) for i in range(2 if kind == "LSTMCell" else 1)] if with_state else []
    check(make(nn), make(torch.nn), sample(*x_shape), states)


def test_cell_unrolled_equals_layer():
    """A GRUCell stepped by hand over a sequence gives the GRU layer's outputs with the same weights."""
    layer, cell = nn.GRU(3, 4), nn.GRUCell(3, 4)
    cell.load_state_dict({k[:-3]: v for k, v in layer.state_dict().items()})
    x = lepton.randn(6, 2, 3)
    out, h_n = layer(x)
    h = None
    for t in range(6):
        h = cell(x[t], h)
        assert_close(h, out[t].numpy(), **F32)
    assert_close(h, h_n[0].numpy(), **F32)


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell"])
def test_init_is_uniform_in_inverse_sqrt_hidden(kind):
    layer = getattr(nn, kind)(50, 64)
    bound = 1 / math.sqrt(64)
    for name, p in layer.named_parameters():
        v = p.detach().numpy()
        assert v.min() >= -bound and v.max() <= bound, name
        assert abs(v.std() - bound / math.sqrt(3)) < 0.1 * bound, name  # uniform's std, not a constant


def test_state_dict_names_and_shapes_match_torch():
    layer = nn.LSTM(6, 5, num_layers=2, bidirectional=True, proj_size=2)
    tlayer = torch.nn.LSTM(6, 5, num_layers=2, bidirectional=True, proj_size=2)
    ours = {k: tuple(v.shape) for k, v in layer.state_dict().items()}
    assert ours == {k: tuple(v.shape) for k, v in tlayer.state_dict().items()}
    assert [[tuple(w.shape) for w in ws] for ws in layer.all_weights] == \
        [[tuple(w.shape) for w in ws] for ws in tlayer.all_weights]
    layer.flatten_parameters()  # accepted (a no-op) so that torch code runs unchanged


def test_dropout_between_layers_only_in_training():
    lepton.manual_seed(0)
    layer = nn.LSTM(4, 16, num_layers=2, dropout=0.5)
    x = lepton.randn(5, 3, 4)
    layer.eval()
    a, b = layer(x)[0], layer(x)[0]
    assert_close(a, b.numpy(), rtol=0, atol=0)
    layer.train()
    c, d = layer(x)[0], layer(x)[0]
    assert not np.allclose(c.numpy(), a.numpy()) and not np.allclose(c.numpy(), d.numpy())
    one = nn.LSTM(4, 16, num_layers=1)  # the last layer's output is never dropped
    one.train()
    assert_close(one(x)[0], one(x)[0].numpy(), rtol=0, atol=0)


def test_dropout_with_one_layer_warns():
    with pytest.warns(UserWarning, match="num_layers greater than 1"):
        nn.GRU(3, 4, dropout=0.2)


def test_empty_batch():
    out, h = nn.GRU(3, 4, num_layers=2)(lepton.randn(5, 0, 3))
    assert tuple(out.shape) == (5, 0, 4) and tuple(h.shape) == (2, 0, 4)


def test_repr():
    assert repr(nn.LSTM(3, 4, num_layers=2, batch_first=True, bidirectional=True)) == \
        "LSTM(3, 4, num_layers=2, batch_first=True, bidirectional=True)"
    assert repr(nn.RNN(3, 4, nonlinearity="relu", bias=False)) == "RNN(3, 4, nonlinearity='relu', bias=False)"
    assert repr(nn.GRUCell(2, 3)) == "GRUCell(2, 3)"


@pytest.mark.parametrize("make,args,exc,match", [
    (lambda: nn.LSTM(4, 5), (lepton.randn(3, 2, 6),), ValueError, r"Expected 4, got input of shape \(3, 2, 6\)"),
    (lambda: nn.GRU(4, 5), (lepton.randn(3, 2, 1, 4),), ValueError, r"got shape \(3, 2, 1, 4\)"),
    (lambda: nn.RNN(4, 5), (lepton.randn(0, 2, 4),), ValueError, "sequence length"),
    (lambda: nn.RNN(4, 5, batch_first=True), (lepton.randn(2, 0, 4),), ValueError, "sequence length"),
    (lambda: nn.RNN(4, 5), (lepton.randn(3, 2, 4).double(),), TypeError, "float64 does not match"),
    (lambda: nn.RNN(4, 5), ([[1.0] * 4],), TypeError, "must be a lepton.Tensor"),
    (lambda: nn.RNN(4, 5, num_layers=2), (lepton.randn(3, 2, 4), lepton.randn(1, 2, 5)), ValueError,
     r"h_0 of shape \(2, 2, 5\), got \(1, 2, 5\)"),
    (lambda: nn.GRU(4, 5, bidirectional=True), (lepton.randn(3, 4), lepton.randn(2, 1, 5)), ValueError,
     r"h_0 of shape \(2, 5\), got \(2, 1, 5\)"),
    (lambda: nn.LSTM(4, 5), (lepton.randn(3, 2, 4), lepton.randn(1, 2, 5)), TypeError, r"tuple \(h_0, c_0\)"),
    (lambda: nn.LSTM(4, 5), (lepton.randn(3, 2, 4), (lepton.randn(1, 2, 5), lepton.randn(1, 3, 5))), ValueError,
     r"c_0 of shape \(1, 2, 5\), got \(1, 3, 5\)"),
    (lambda: nn.LSTMCell(4, 5), (lepton.randn(2, 4), lepton.randn(2, 5)), TypeError, r"tuple \(h, c\)"),
    (lambda: nn.GRUCell(4, 5), (lepton.randn(2, 4), lepton.randn(3, 5)), ValueError,
     r"hx of shape \(2, 5\), got \(3, 5\)"),
    (lambda: nn.RNNCell(4, 5), (lepton.randn(2, 3, 4),), ValueError, r"got shape \(2, 3, 4\)"),
])
def test_bad_inputs_raise_clear_errors(make, args, exc, match):
    with pytest.raises(exc, match=match):
        make()(*args)


@pytest.mark.parametrize("make,match", [
    (lambda: nn.RNN(4, 5, nonlinearity="sigmoid"), "unknown nonlinearity"),
    (lambda: nn.RNNCell(4, 5, nonlinearity="gelu"), "unknown nonlinearity"),
    (lambda: nn.LSTM(4, 0), "hidden_size must be an integer >= 1"),
    (lambda: nn.GRU(4, 5, num_layers=0), "num_layers must be an integer >= 1"),
    (lambda: nn.GRU(4, 5.5), "hidden_size must be an integer"),
    (lambda: nn.LSTM(4, 5, num_layers=2, dropout=1.5), "dropout should be a number in range"),
    (lambda: nn.LSTM(4, 5, proj_size=5), "proj_size has to be smaller than hidden_size"),
])
def test_bad_constructor_arguments(make, match):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match=match):
            make()
