"""lepton.nn.Module, Parameter and the containers: registration, state_dict, modes, to(), hooks, repr, summary."""

from collections import OrderedDict

import numpy as np
import pytest

import lepton
from lepton import nn


class Block(nn.Module):
    """A parameter, a persistent and a non-persistent buffer, and a child."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(lepton.ones(3))
        self.register_buffer("count", lepton.zeros(1, dtype=lepton.int64))
        self.register_buffer("cache", lepton.zeros(3), persistent=False)
        self.fc = nn.Linear(3, 2)

    def forward(self, x):
        return self.fc(x * self.scale)


# ---- Parameter -----------------------------------------------------------------------------

def test_parameter_is_a_tensor_leaf_that_aliases_its_data():
    data = lepton.zeros(3)
    p = nn.Parameter(data)
    assert isinstance(p, lepton.Tensor) and isinstance(p, nn.Parameter)
    assert not isinstance(data, nn.Parameter)
    assert p.requires_grad and p.is_leaf and p.grad_fn is None
    with lepton.no_grad():
        p.fill_(2.0)
    np.testing.assert_array_equal(data.numpy(), [2, 2, 2])  # shares storage, as in torch
    assert not nn.Parameter(data, requires_grad=False).requires_grad


def test_none_and_other_objects_are_not_parameters():
    assert not isinstance(None, nn.Parameter)
    assert not isinstance(3, nn.Parameter)
    m = nn.Module()
    m.x = None  # a plain attribute, not a registered parameter
    assert m.x is None and dict(m.named_parameters()) == {}


def test_parameter_gradients_and_derived_tensors():
    p = nn.Parameter(lepton.ones(2))
    (p * 3).sum().backward()
    np.testing.assert_array_equal(p.grad.numpy(), [3, 3])
    assert not isinstance(p * 1, nn.Parameter)
    assert not isinstance(p.detach(), nn.Parameter)
    assert nn.Parameter().shape == (0,)
    with pytest.raises(TypeError, match="lepton.Tensor"):
        nn.Parameter([1.0, 2.0])


# ---- registration and traversal ------------------------------------------------------------

def test_registration_through_setattr():
    b = Block()
    assert list(b._parameters) == ["scale"] and list(b._modules) == ["fc"]
    assert list(b._buffers) == ["count", "cache"]
    assert [n for n, _ in b.named_parameters()] == ["scale", "fc.weight", "fc.bias"]
    assert [n for n, _ in b.named_parameters(recurse=False)] == ["scale"]
    assert [n for n, _ in b.named_buffers()] == ["count", "cache"]
    assert b.scale is b.scale and b.fc.weight is list(b.parameters())[1]  # the same objects every time
    b.plain = 5
    assert "plain" not in b._parameters and b.plain == 5
    b.fc = None
    assert b.fc is None and [n for n, _ in b.named_parameters()] == ["scale"]
    del b.scale
    assert "scale" not in b._parameters
    with pytest.raises(AttributeError, match="'Block' object has no attribute 'scale'"):
        b.scale
    assert "count" in dir(b)


def test_registration_errors():
    class Early(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(lepton.ones(1))

    with pytest.raises(AttributeError, match="before Module.__init__"):
        Early()
    b = Block()
    with pytest.raises(TypeError, match="cannot assign 'Tensor' as parameter 'scale'"):
        b.scale = lepton.ones(3)
    with pytest.raises(TypeError, match="cannot assign 'int' as child module 'fc'"):
        b.fc = 3
    with pytest.raises(TypeError, match="buffer 'count'"):
        b.count = 3
    with pytest.raises(KeyError, match="empty or contain"):
        b.register_buffer("a.b", lepton.ones(1))
    with pytest.raises(KeyError, match="already exists"):
        b.register_parameter("forward", nn.Parameter(lepton.ones(1)))
    with pytest.raises(TypeError, match="lepton.nn.Parameter or None"):
        b.register_parameter("w", lepton.ones(1))
    with pytest.raises(TypeError, match="lepton.nn.Parameter or None"):
        b.register_parameter("w", nn.Parameter(lepton.ones(1)) * 2)  # derived from a parameter: a plain tensor
    with pytest.raises(TypeError, match="is not a Module subclass"):
        b.add_module("m", 3)
    with pytest.raises(NotImplementedError, match='missing the required "forward"'):
        nn.Module()(1)


def test_shared_modules_and_parameters_appear_once():
    shared = nn.Linear(2, 2)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    assert len(list(model.parameters())) == 2
    assert [n for n, _ in model.named_modules()] == ["", "0", "1"]
    assert [n for n, _ in model.named_children()] == ["0", "1"]
    assert len(list(model.named_parameters(remove_duplicate=False))) == 4
    tied = nn.Sequential(nn.Linear(3, 3, bias=False), nn.Linear(3, 3, bias=False))
    tied[1].weight = tied[0].weight
    assert len(list(tied.parameters())) == 1
    assert [type(m).__name__ for m in model.modules()] == ["Sequential", "Linear", "ReLU"]
    assert list(model.children()) == [shared, model[1]]


# ---- state_dict ----------------------------------------------------------------------------

def test_state_dict_keys_and_detach():
    b = Block()
    sd = b.state_dict()
    assert isinstance(sd, OrderedDict)
    assert list(sd) == ["scale", "count", "fc.weight", "fc.bias"]  # the non-persistent buffer is left out
    assert all(not t.requires_grad for t in sd.values())
    assert b.state_dict(keep_vars=True)["scale"] is b.scale
    nested = nn.Sequential(OrderedDict(block=b, head=nn.Linear(2, 1)))
    assert list(nested.state_dict()) == ["block.scale", "block.count", "block.fc.weight", "block.fc.bias",
                                         "head.weight", "head.bias"]


def test_state_dict_round_trip():
    src, dst = Block(), Block()
    with lepton.no_grad():
        src.count.fill_(7)
    weight = dst.fc.weight
    result = dst.load_state_dict(src.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert dst.fc.weight is weight  # loaded in place
    for key, value in src.state_dict().items():
        np.testing.assert_array_equal(dst.state_dict()[key].numpy(), value.numpy())
    x = lepton.randn(4, 3)
    np.testing.assert_array_equal(dst(x).detach().numpy(), src(x).detach().numpy())


def test_load_state_dict_strict_errors():
    b = Block()
    sd = b.state_dict()
    del sd["fc.bias"]
    sd["extra"] = lepton.ones(1)
    with pytest.raises(RuntimeError) as err:
        b.load_state_dict(sd)
    msg = str(err.value)
    assert "Error(s) in loading state_dict for Block" in msg
    assert 'Missing key(s) in state_dict: "fc.bias"' in msg and 'Unexpected key(s) in state_dict: "extra"' in msg
    missing, unexpected = b.load_state_dict(sd, strict=False)
    assert missing == ["fc.bias"] and unexpected == ["extra"]
    sd = b.state_dict()
    sd["fc.weight"] = lepton.zeros(5, 5)
    for strict in (True, False):
        with pytest.raises(RuntimeError, match=r"size mismatch for fc.weight: copying a param with shape \(5, 5\)"):
            b.load_state_dict(sd, strict=strict)
    assert float(b.fc.weight.abs().sum()) > 0  # nothing was copied


# ---- modes, gradients, to() ----------------------------------------------------------------

def test_train_eval_recurse():
    model = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.Dropout(0.5)))
    assert all(m.training for m in model.modules())
    assert model.eval() is model and not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())
    with pytest.raises(ValueError, match="boolean"):
        model.train("no")


def test_zero_grad_requires_grad_and_apply():
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
    for p in model.parameters():
        (p * 1).sum().backward()
    model.zero_grad(set_to_none=False)
    assert all(float(p.grad.abs().sum()) == 0 for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())
    model.requires_grad_(False)
    assert not any(p.requires_grad for p in model.parameters())
    order = []
    assert model.apply(lambda m: order.append(type(m).__name__)) is model
    assert order == ["Linear", "Linear", "Sequential"]


def test_to_dtype_and_identity():
    b = Block()
    params = list(b.parameters())
    assert b.to(lepton.float32) is b
    assert all(x is y for x, y in zip(b.parameters(), params))  # nothing to change: the same objects
    b.scale.grad = lepton.ones(3)
    b.double()
    assert all(p.dtype == lepton.float64 and isinstance(p, nn.Parameter) and p.requires_grad for p in b.parameters())
    assert b.scale.grad.dtype == lepton.float64
    assert b.count.dtype == lepton.int64  # integer buffers keep their dtype
    assert b.cache.dtype == lepton.float64
    b.to(device="cpu", dtype=lepton.float32)
    assert b.fc.weight.dtype == lepton.float32
    b.to(lepton.zeros(1, dtype=lepton.float64))
    assert b.fc.weight.dtype == lepton.float64
    with pytest.raises(TypeError, match="floating point"):
        b.to(lepton.int32)


# ---- hooks ---------------------------------------------------------------------------------

def test_forward_hooks():
    model = nn.Identity()
    seen = []
    pre = model.register_forward_pre_hook(lambda m, args: (args[0] * 2,))
    post = model.register_forward_hook(lambda m, args, out: seen.append((args[0].item(), out.item())) or out + 1)
    assert model(lepton.tensor(1.0)).item() == 3.0
    assert seen == [(2.0, 2.0)]
    pre.remove()
    assert model(lepton.tensor(1.0)).item() == 2.0
    post.remove()
    assert model(lepton.tensor(1.0)).item() == 1.0
    with model.register_forward_pre_hook(lambda m, args: lepton.tensor(5.0)):
        assert model(lepton.tensor(1.0)).item() == 5.0
    assert model(lepton.tensor(1.0)).item() == 1.0


# ---- repr and summary ----------------------------------------------------------------------

def test_repr_matches_torch():
    torch = pytest.importorskip("torch")

    def build(ns):
        return ns.Sequential(ns.Linear(4, 3), ns.ReLU(), ns.Sequential(ns.Dropout(0.1), ns.GELU(approximate="tanh")),
                             ns.ModuleDict({"soft": ns.Softmax(dim=1), "flat": ns.Flatten()}),
                             ns.ModuleList([ns.Unflatten(1, (1, 3)), ns.Linear(3, 2, bias=False)]),
                             ns.CrossEntropyLoss(reduction="sum"), ns.Identity())

    assert repr(build(nn)) == repr(build(torch.nn))


def test_summary_counts(capsys):
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    model[2].bias.requires_grad_(False)
    model.summary()
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.split() and line.split()[0] in "012"}
    assert rows["0"][1:] == ["Linear", "15", "yes"]
    assert rows["1"][1:] == ["ReLU", "0", "-"]
    assert rows["2"][1:] == ["Linear", "8", "partial"]
    assert "Total params: 23" in out and "Trainable params: 21" in out and "Non-trainable params: 2" in out
    shared = nn.Linear(10, 10)
    nn.Sequential(shared, shared).summary()
    assert "Total params: 110" in capsys.readouterr().out


# ---- containers ----------------------------------------------------------------------------

def test_sequential():
    a, b, c = nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)
    seq = nn.Sequential(a, b, c)
    assert len(seq) == 3 and list(seq) == [a, b, c]
    assert seq[0] is a and seq[-1] is c
    head = seq[1:]
    assert isinstance(head, nn.Sequential) and list(head) == [b, c] and list(head._modules) == ["1", "2"]
    with pytest.raises(IndexError, match="out of range"):
        seq[3]
    seq.append(nn.Sigmoid())
    assert len(seq) == 4 and list(seq._modules) == ["0", "1", "2", "3"]
    seq[1] = nn.Tanh()
    assert isinstance(seq[1], nn.Tanh)
    del seq[3]
    assert len(seq) == 3
    named = nn.Sequential(OrderedDict(enc=a, act=b))
    assert list(named._modules) == ["enc", "act"] and named.enc is a
    x = lepton.randn(5, 2)
    np.testing.assert_allclose(nn.Sequential(nn.Tanh(), nn.Sigmoid())(x).numpy(), x.tanh().sigmoid().numpy())


def test_module_list():
    layers = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    assert len(layers) == 3 and len(list(layers.parameters())) == 6
    layers.append(nn.ReLU()).extend([nn.Tanh()])
    assert len(layers) == 5 and isinstance(layers[-1], nn.Tanh)
    first = layers[0]
    del layers[0]
    assert list(layers._modules) == ["0", "1", "2", "3"] and first not in list(layers)
    layers.insert(0, first)
    assert layers[0] is first and list(layers._modules) == ["0", "1", "2", "3", "4"]
    assert isinstance(layers[1:3], nn.ModuleList) and len(layers[1:3]) == 2
    layers += [nn.Sigmoid()]
    assert len(layers) == 6


def test_module_dict_and_parameter_list():
    d = nn.ModuleDict({"a": nn.Linear(2, 2), "b": nn.ReLU()})
    assert list(d) == ["a", "b"] and "a" in d and len(d) == 2
    d["c"] = nn.Tanh()
    assert list(d.keys()) == ["a", "b", "c"] and isinstance(d.pop("c"), nn.Tanh)
    assert [n for n, _ in d.named_parameters()] == ["a.weight", "a.bias"]
    params = nn.ParameterList([lepton.ones(2), nn.Parameter(lepton.zeros(3))])
    assert len(params) == 2 and all(isinstance(p, nn.Parameter) for p in params)
    params.append(lepton.ones(4))
    assert [n for n, _ in params.named_parameters()] == ["0", "1", "2"]
    assert params[-1].shape == (4,)
    with pytest.raises(TypeError, match="holds tensors"):
        params.append(3)


def test_deepcopy_of_tensors_and_models():
    import copy

    p = nn.Parameter(lepton.ones(3))
    p.grad = lepton.full((3,), 2.0)
    q = copy.deepcopy(p)
    assert isinstance(q, nn.Parameter) and q is not p and q.requires_grad
    np.testing.assert_array_equal(q.grad.numpy(), [2, 2, 2])
    with lepton.no_grad():
        q.fill_(5)
    np.testing.assert_array_equal(p.detach().numpy(), [1, 1, 1])  # its own storage
    with pytest.raises(RuntimeError, match="graph leaves"):
        copy.deepcopy(p * 2)

    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4))
    model[2].weight = model[0].weight  # tied
    twin = copy.deepcopy(model)
    assert twin[2].weight is twin[0].weight and twin[0].weight is not model[0].weight
    x = lepton.randn(2, 4)
    np.testing.assert_array_equal(twin(x).detach().numpy(), model(x).detach().numpy())


def test_reassigned_children_and_parameters_keep_their_place_as_in_torch():
    import torch

    for engine in (lepton, torch):
        seq = engine.nn.Sequential(engine.nn.Linear(2, 3), engine.nn.ReLU(), engine.nn.Linear(3, 1))
        seq[0] = engine.nn.Linear(2, 3, bias=False)
        setattr(seq, "1", engine.nn.Tanh())
        lin = seq[2]
        lin.weight = engine.nn.Parameter(engine.zeros(1, 3))
        assert [n for n, _ in seq.named_children()] == ["0", "1", "2"]
        assert [n for n, _ in lin.named_parameters()] == ["weight", "bias"]
        assert type(seq[1]).__name__ == "Tanh" and seq[0].bias is None
