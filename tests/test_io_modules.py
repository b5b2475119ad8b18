"""torch.save(model) / torch.load of whole nn.Modules: classes by name, never pickle, and torch's
weights_only rules for which names a file may bring in (serialization/objects.py)."""

import io
import json
import pickle

import numpy as np
import pytest

import lepton
import lepton.nn as nn
import lepton.nn.functional as F
from lepton.serialization import container, objects


class TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(3, 8), nn.Tanh())
        self.rnn = nn.LSTM(8, 4, num_layers=2)
        self.head, self.alias = nn.Linear(4, 5), None
        self.alias = self.head  # one module under two names
        self.tied = nn.Linear(4, 5, bias=False)
        self.tied.weight = self.head.weight  # one Parameter in two modules
        self.act, self.scale, self.note = F.gelu, 0.5, {"kind": ("two", 2)}
        self.register_buffer("steps", lepton.tensor([3], dtype=lepton.int64))
        self.register_buffer("scratch", lepton.zeros(2), persistent=False)

    def forward(self, x):
        h, _ = self.rnn(self.body(x))
        return self.act(self.head(h)) * self.scale


def round_trip(obj, **load_args):
    buf = io.BytesIO()
    lepton.save(obj, buf)
    buf.seek(0)
    return lepton.load(buf, **load_args)


def test_a_whole_module_comes_back_with_its_structure_values_and_gradients():
    lepton.manual_seed(0)
    model = TwoHeads().eval()
    with lepton.serialization.safe_globals([TwoHeads]):
        back = round_trip({"model": model, "epoch": 3})["model"]
    assert type(back) is TwoHeads and back.training is False and back.alias is back.head
    assert back.tied.weight is back.head.weight
    assert back.act is F.gelu and back.note == {"kind": ("two", 2)} and back.scale == 0.5
    assert [n for n, _ in back.named_buffers()] == ["steps", "scratch"] and "scratch" not in back.state_dict()
    assert list(back.state_dict()) == list(model.state_dict())
    x = lepton.randn(6, 2, 3)
    np.testing.assert_array_equal(back(x).numpy(), model(x).numpy())
    back.train()
    back(x).sum().backward()
    assert all(p.grad is not None for p in back.parameters())
    assert all(type(p) is type(q) for p, q in zip(back.parameters(), model.parameters()))
    before = back.head.weight.numpy().copy()
    lepton.optim.SGD(back.parameters(), lr=0.1).step()
    assert not np.array_equal(before, back.head.weight.numpy())
    assert np.array_equal(before, model.head.weight.numpy())  # the loaded module owns its memory


def test_weights_only_refuses_user_classes_unless_allowed_as_in_torch():
    model = TwoHeads()
    with pytest.raises(pickle.UnpicklingError, match=r"refuses .*TwoHeads.*safe_globals\(\[TwoHeads\]\)"):
        round_trip(model)
    assert type(round_trip(model, weights_only=False)) is TwoHeads
    assert objects.get_safe_globals() == []
    with lepton.serialization.safe_globals([TwoHeads]):
        assert objects.get_safe_globals() == [TwoHeads]
        assert type(round_trip(model)) is TwoHeads
    assert objects.get_safe_globals() == []  # the with-block's list is gone again
    lepton.serialization.add_safe_globals([(TwoHeads, "elsewhere.Renamed")])
    try:
        with pytest.raises(pickle.UnpicklingError):  # allowed under another name only
            round_trip(model)
    finally:
        lepton.serialization.clear_safe_globals()


def test_leptons_own_modules_need_no_allowing():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.GRU(8, 3))
    back = round_trip(model)
    assert [type(m) for m in back] == [type(m) for m in model]
    for a, b in zip(back.parameters(), model.parameters()):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_what_has_no_importable_name_is_refused_at_save_with_its_path():
    class Local(nn.Module):
        pass

    with pytest.raises(TypeError, match=r"Local' at 'inner'.*no importable name"):
        lepton.save({"inner": Local()}, io.BytesIO())
    model = nn.Linear(2, 2)
    model.hook = lambda m: m
    with pytest.raises(TypeError, match=r"<lambda>' at 'hook'"):
        lepton.save(model, io.BytesIO())


def _file_naming(ref, tag="global"):
    node = {"global": ref} if tag == "global" else {"object": 0}
    doc = {"root": node, "tensors": [], "ndarrays": []}
    if tag == "object":
        doc["objects"] = [{"class": ref, "state": {"dict": []}}]
    buf = io.BytesIO()
    container.write(buf, [], {"format": "lepton-2", "lepton": json.dumps(doc)}, iter(()))
    buf.seek(0)
    return buf


@pytest.mark.parametrize("tag", ["global", "object"])
def test_a_file_cannot_reach_outside_lepton_through_a_lepton_module(tag):
    for ref in ("lepton.io:os.system", "os:system", "builtins:eval", "lepton.serialization.objects:importlib.import_module"):
        with pytest.raises(pickle.UnpicklingError, match="refuses"):
            lepton.load(_file_naming(ref, tag))
    assert lepton.load(_file_naming("lepton.nn.functional:relu")) is F.relu
    with pytest.raises(ValueError, match="not a class"):
        lepton.load(_file_naming("lepton.nn.functional:relu", "object"))
