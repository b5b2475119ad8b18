"""Checkpoints: safetensors files with a JSON skeleton, atomic writes, clear errors on bad files."""

import os

import numpy as np
import pytest

import lepton
from lepton import nn, optim

DTYPES = [lepton.bool, lepton.uint8, lepton.int8, lepton.int32, lepton.int64, lepton.float16, lepton.bfloat16,
          lepton.float32, lepton.float64]


def same(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and bool((a.float() == b.float()).all().item())


@pytest.mark.parametrize("dtype", DTYPES)
def test_tensor_round_trip_every_dtype(tmp_path, dtype):
    t = (lepton.randn(3, 5) * 10).to(dtype)
    lepton.save(t.T, tmp_path / "t.lep")  # a non-contiguous view is saved by value
    assert same(lepton.load(tmp_path / "t.lep"), t.T.contiguous())


def test_nested_training_state_round_trip(tmp_path):
    state = {"model": {"w": lepton.randn(2, 2), "b": lepton.zeros(2)}, "step": 7, "lr": 0.25, "name": "run",
             "history": [1.5, 2.5], "rng": lepton.get_rng_state(), "none": None, 3: "int key",
             "empty": lepton.empty(0, 4)}
    lepton.save(state, tmp_path / "s.lep")
    back = lepton.load(tmp_path / "s.lep")
    assert back["step"] == 7 and back["lr"] == 0.25 and back["name"] == "run" and back[3] == "int key"
    assert back["history"] == [1.5, 2.5] and back["none"] is None
    assert back["rng"] == lepton.get_rng_state() and isinstance(back["rng"], tuple)
    assert same(back["model"]["w"], state["model"]["w"]) and back["empty"].shape == (0, 4)


def test_model_and_optimizer_resume_identically(tmp_path):
    def build():
        lepton.manual_seed(1)
        model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        return model, optim.AdamW(model.parameters(), lr=1e-2)

    x, y = lepton.randn(16, 4), lepton.randint(0, 2, (16,))

    def train(model, opt, steps):
        for _ in range(steps):
            loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()

    model, opt = build()
    train(model, opt, 3)
    lepton.save({"model": model.state_dict(), "optimizer": opt.state_dict()}, tmp_path / "ckpt.lep")
    train(model, opt, 3)
    model2, opt2 = build()
    ckpt = lepton.load(tmp_path / "ckpt.lep")
    model2.load_state_dict(ckpt["model"])
    opt2.load_state_dict(ckpt["optimizer"])
    train(model2, opt2, 3)
    for (k, a), (_, b) in zip(model.state_dict().items(), model2.state_dict().items()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=k)


def test_files_interoperate_with_the_safetensors_package(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    lepton.save({"a": lepton.arange(6).reshape(2, 3).float(), "b": lepton.ones(2, dtype=lepton.int64)}, tmp_path / "x")
    theirs = st.load_file(str(tmp_path / "x"))
    np.testing.assert_array_equal(theirs["a"], np.arange(6, dtype=np.float32).reshape(2, 3))
    st.save_file({"w": np.full((2, 2), 3.0, dtype=np.float32)}, str(tmp_path / "y"))
    ours = lepton.load(tmp_path / "y")
    assert same(ours["w"], lepton.full((2, 2), 3.0))


@pytest.mark.parametrize("damage", ["truncate", "garbage", "huge_header", "short"])
def test_damaged_files_raise_clear_errors(tmp_path, damage):
    path = tmp_path / "c.lep"
    lepton.save({"w": lepton.randn(64, 64)}, path)
    raw = path.read_bytes()
    bad = {"truncate": raw[: len(raw) - 100], "garbage": raw[:8] + b"{not json" + raw[17:],
           "huge_header": (2 ** 40).to_bytes(8, "little") + raw[8:], "short": raw[:5]}[damage]
    path.write_bytes(bad)
    with pytest.raises(ValueError, match="not a valid Lepton checkpoint"):
        lepton.load(path)


def test_unsupported_objects_are_refused_and_leave_nothing(tmp_path):
    path = tmp_path / "bad.lep"
    with pytest.raises(TypeError, match="can't store a object"):
        lepton.save({"x": object()}, path)
    assert not path.exists() and os.listdir(tmp_path) == []


def test_a_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.lep"
    lepton.save({"v": lepton.ones(3)}, path)

    def crash(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="disk full"):
        lepton.save({"v": lepton.zeros(3)}, path)
    monkeypatch.undo()
    assert same(lepton.load(path)["v"], lepton.ones(3))
    assert os.listdir(tmp_path) == ["ckpt.lep"]


def test_view_dtype_reinterprets_bits():
    x = lepton.tensor([1.0, -2.0], dtype=lepton.bfloat16)
    bits = x.view(lepton.float16)
    assert bits.dtype == lepton.float16 and bits.view(lepton.bfloat16).tolist() == [1.0, -2.0]
    with pytest.raises(NotImplementedError, match="same size"):
        x.view(lepton.float32)
