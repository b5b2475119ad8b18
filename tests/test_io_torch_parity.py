"""torch.save / torch.load parity of lepton.save / lepton.load: what PyTorch scripts save (state
dicts, optimizer state, nanoGPT's checkpoint dict, plain Python and NumPy values) round-trips with
types intact, in the safetensors format; torch's own results and the safetensors package are the
oracles."""

import argparse
import dataclasses
import io
import json
import math
from collections import OrderedDict, defaultdict, namedtuple

import numpy as np
import pytest

import lepton
from lepton import nn, optim

torch = pytest.importorskip("torch")
st_torch = pytest.importorskip("safetensors.torch")
st_numpy = pytest.importorskip("safetensors.numpy")

DTYPES = [lepton.bool, lepton.uint8, lepton.int8, lepton.int32, lepton.int64, lepton.float16, lepton.bfloat16,
          lepton.float32, lepton.float64]
NP_DTYPES = ["bool", "uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64", "float16", "float32",
             "float64", "complex64"]


def values(t):
    return (t.float() if t.dtype == lepton.bfloat16 else t).detach().cpu().numpy()


def assert_same(a, b, where="root"):
    """a and b are equal and of identical types all the way down (dict order and key types too)."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, lepton.Tensor):
        assert (a.dtype, tuple(a.shape), a.requires_grad) == (b.dtype, tuple(b.shape), b.requires_grad), where
        np.testing.assert_array_equal(values(a), values(b), err_msg=where)
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, where
        np.testing.assert_array_equal(a, b, err_msg=where)
    elif isinstance(a, (dict, argparse.Namespace)):
        a, b = (vars(a), vars(b)) if isinstance(a, argparse.Namespace) else (a, b)
        assert len(a) == len(b), where
        for (ka, va), (kb, vb) in zip(a.items(), b.items()):
            assert_same(ka, kb, f"{where} key {ka!r}")
            assert_same(va, vb, f"{where}[{ka!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, (set, frozenset)):
        assert {(type(x), x) for x in a} == {(type(y), y) for y in b}, where
    elif isinstance(a, (float, complex, np.floating, np.complexfloating)):
        for x, y in ((a.real, b.real), (a.imag, b.imag)):
            assert (math.isnan(x) and math.isnan(y)) or (x == y and math.copysign(1, x) == math.copysign(1, y)), where
    else:
        assert a == b, where


def round_trip(obj, **load_args):
    buf = io.BytesIO()
    lepton.save(obj, buf)
    buf.seek(0)
    return lepton.load(buf, **load_args)


def torch_round_trip(obj):
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=False)


PLAIN = {
    "none": None,
    "int": -(2 ** 70),
    "float": 0.1,
    "negative_zero": -0.0,
    "nan": math.nan,
    "inf": -math.inf,
    "bool": True,
    "str": "héllo \u2603 \"quoted\" {'x': 1}",
    "bytes": bytes(range(256)),
    "bytearray": bytearray(b"\x00ab"),
    "complex": complex(1.5, -math.inf),
    "list": [1, [2.0, "3"], [], None],
    "tuple": (1, (2,), ()),
    "set": {1, "a", (2, 3)},
    "frozenset": frozenset({0.5, None}),
    "ordered_dict": OrderedDict([("b", 1), ("a", [2]), ("c", OrderedDict())]),
    "namespace": argparse.Namespace(lr=0.1, name="run", steps=[1, 2], flag=None),
    "key_types": {1: "int", "1": "str", 1.5: "float", None: "none", True: "bool", (1, "x"): "tuple",
                  frozenset({2}): "frozenset", b"k": "bytes", -0.0 + 1j: "complex"},
    "colliding_keys": {"": 0, "tensor": 1, "__metadata__": 2, "dict": 3, "tuple": {"tuple": [4]},
                       "__tensor__": {"__dict__": 5}, "float": "nan", "str:x": 6, "a/b": 7},
    "numpy_scalars": [np.float32(1.25), np.float16(-2.5), np.float64(math.nan), np.int64(-7), np.uint8(255),
                      np.bool_(True), np.uint64(2 ** 64 - 1), np.complex64(1 - 2j), np.complex128(3j), np.int16(-3)],
}


@pytest.mark.parametrize("name", list(PLAIN))
def test_plain_values_round_trip_like_torch(name):
    obj = PLAIN[name]
    back = round_trip(obj)
    assert_same(back, obj)
    assert_same(back, torch_round_trip(obj))  # and exactly what torch.load gives back


@pytest.mark.parametrize("dtype", DTYPES)
def test_tensors_of_every_dtype_round_trip(dtype):
    t = (lepton.randn(4, 3) * 5).to(dtype)
    obj = {"t": t, "view": t.T, "row": t[1], "scalar": t[0, 0], "empty": lepton.zeros(0, 3, dtype=dtype),
           "zero_d": lepton.tensor(3, dtype=dtype)}
    back = round_trip(obj)
    assert_same(back, {k: v.contiguous() for k, v in obj.items()})
    assert back["view"].is_contiguous() and back["zero_d"].shape == ()


def test_gradient_flags_and_parameters_round_trip_like_torch():
    p, g = nn.Parameter(lepton.randn(3)), lepton.randn(2).requires_grad_()
    back = round_trip({"p": p, "g": g, "derived": g * 2, "plain": lepton.ones(2)})
    assert isinstance(back["p"], nn.Parameter) and back["p"].requires_grad and back["p"].is_leaf
    assert not isinstance(back["g"], nn.Parameter) and back["g"].requires_grad and back["g"].is_leaf
    assert back["derived"].requires_grad and back["derived"].is_leaf and not back["plain"].requires_grad
    tp = torch_round_trip({"p": torch.nn.Parameter(torch.randn(3)), "derived": torch.ones(2, requires_grad=True) * 2})
    assert isinstance(tp["p"], torch.nn.Parameter) and tp["derived"].requires_grad and tp["derived"].is_leaf


@pytest.mark.parametrize("dtype", NP_DTYPES)
def test_numpy_arrays_stay_numpy(dtype):
    a = (np.arange(24) % 7 - 3).astype(dtype).reshape(2, 3, 4)
    obj = [a, a[:, ::2].T, np.array(a[0, 0, 0]), np.zeros((0, 5), dtype=dtype)]
    back = round_trip(obj)
    assert back[2].shape == () and back[1].flags.c_contiguous
    assert_same(back, [np.array(x, order="C") for x in obj])
    assert_same(back, torch_round_trip(obj))


def test_big_endian_and_odd_arrays():
    a = np.arange(6, dtype=">i4").reshape(2, 3)
    back = round_trip(a)
    assert back.dtype == np.int32 and np.array_equal(back, a)
    for bad in (np.array(["x"]), np.array([object()]), np.zeros(2, dtype=np.complex128), np.ma.masked_array([1])):
        with pytest.raises(TypeError, match="at 'x/0'"):
            lepton.save({"x": [bad]}, io.BytesIO())


def test_devices_and_dtypes_round_trip():
    obj = {"devices": [lepton.device("cpu"), lepton.device("cuda:1")], "dtypes": DTYPES}
    back = round_trip(obj)
    assert [str(d) for d in back["devices"]] == ["cpu", "cuda:1"]
    assert all(type(d) is lepton.device for d in back["devices"]) and back["dtypes"] == DTYPES


def test_none_root_and_tensor_root():
    assert round_trip(None) is None
    t = lepton.randn(2, 2)
    assert_same(round_trip(t), t)


def test_colliding_paths_keep_their_tensors_apart(tmp_path):
    a, b, c, d = (lepton.full((2,), float(i)) for i in range(4))
    obj = {"a/b": a, "a": {"b": b}, 1: c, "1": d, "__metadata__": a.clone(), "": {"": b.clone()}}
    lepton.save(obj, tmp_path / "x")
    assert_same(lepton.load(tmp_path / "x"), obj)
    names = st_numpy.load_file(str(tmp_path / "x"))  # every entry is reachable by the safetensors package
    assert len(names) == 6 and np.array_equal(names["a/b"], values(a))


def test_shared_tensors_keep_their_sharing_like_torch():
    t = lepton.randn(3, 4)
    back = round_trip({"x": t, "again": t, "alias": t.detach(), "slice": t[1], "tuple": (t,)})
    assert back["x"] is back["again"] is back["tuple"][0]  # one object saved twice is one object
    assert back["alias"] is not back["x"] and back["alias"].data_ptr() == back["x"].data_ptr()
    back["x"].mul_(0)
    assert values(back["alias"]).sum() == 0 and np.array_equal(values(back["slice"]), values(t[1]))  # saved by value
    tb = torch_round_trip({"x": (x := torch.randn(3)), "again": x, "alias": x.detach()})
    assert tb["x"] is tb["again"] and tb["alias"] is not tb["x"] and tb["alias"].data_ptr() == tb["x"].data_ptr()


def test_tied_weights_of_a_state_dict_load_tied():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb, self.head = nn.Embedding(5, 4), nn.Linear(4, 5, bias=False)
            self.emb.weight = self.head.weight

    sd = round_trip(Tied().state_dict())
    assert type(sd) is OrderedDict and list(sd) == ["emb.weight", "head.weight"]
    assert sd["emb.weight"].data_ptr() == sd["head.weight"].data_ptr()
    model = Tied()
    model.load_state_dict(sd)
    np.testing.assert_array_equal(values(model.emb.weight), values(sd["head.weight"]))


def test_bytesio_open_files_and_positions(tmp_path):
    obj = {"w": lepton.randn(3), "n": 1}
    with open(tmp_path / "f", "wb") as f:
        f.write(b"prefix")
        lepton.save(obj, f)
    with open(tmp_path / "f", "rb") as f:
        f.seek(6)
        assert_same(lepton.load(f), obj)
    with open(tmp_path / "f", "w") as f, pytest.raises(TypeError, match="binary mode"):
        lepton.save(obj, f)
    with open(tmp_path / "f", "r") as f, pytest.raises(TypeError, match="binary mode"):
        lepton.load(f)
    with pytest.raises(TypeError, match="path or a binary file object, not int"):
        lepton.save(obj, 3)
    with pytest.raises(TypeError, match="path or a binary file object, not list"):
        lepton.load([])


def test_paths_mmap_and_weights_only(tmp_path):
    obj = {"w": lepton.randn(5, 5), "ns": argparse.Namespace(a=1)}
    lepton.save(obj, str(tmp_path / "c.pt"))
    for kwargs in ({}, {"weights_only": True}, {"weights_only": False}, {"mmap": True}, {"mmap": False}):
        assert_same(lepton.load(tmp_path / "c.pt", **kwargs), obj)
    with pytest.raises(ValueError, match="mmap=True needs a file path"):
        lepton.load(io.BytesIO((tmp_path / "c.pt").read_bytes()), mmap=True)
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(ValueError, match="only 0 bytes"):
        lepton.load(tmp_path / "empty", mmap=True)


def test_pickle_arguments_are_refused():
    with pytest.raises(TypeError, match="never pickles"):
        lepton.save({}, io.BytesIO(), pickle_module=json)
    with pytest.raises(TypeError, match="never pickles"):
        lepton.load(io.BytesIO(), pickle_module=json)
    with pytest.raises(TypeError, match="encoding"):
        lepton.load(io.BytesIO(), encoding="latin1")
    buf = io.BytesIO()
    lepton.save([1], buf, pickle_protocol=4, _use_new_zipfile_serialization=False)  # torch's format knobs: no effect
    buf.seek(0)
    assert lepton.load(buf) == [1]


@dataclasses.dataclass
class Config:
    lr: float = 0.1


def test_objects_that_need_code_are_refused_with_their_path():
    model = nn.Linear(2, 2)
    with pytest.raises(TypeError, match=r"AdamW at 'opt'.*state_dict\(\)"):
        lepton.save({"opt": optim.AdamW(model.parameters())}, io.BytesIO())
    refused = {"dataclass": (Config(), "dataclasses.asdict"), "lambda": (lambda: 0, "no importable name"),
               "namedtuple": (namedtuple("P", "x y")(1, 2), "plain tuples"),
               "defaultdict": (defaultdict(list), "plain dicts"), "object": (object(), "can't store a object"),
               "longdouble": (np.longdouble(1), "numpy.longdouble")}
    for name, (obj, message) in refused.items():
        with pytest.raises(TypeError, match=message) as e:
            lepton.save({"a": [0, {"b": obj}]}, io.BytesIO())
        assert "at 'a/1/b'" in str(e.value), name
    loop = [1]
    loop.append(loop)
    with pytest.raises(ValueError, match="list at '1' contains itself"):
        lepton.save(loop, io.BytesIO())


def test_a_torch_linear_written_by_safetensors_loads_into_lepton(tmp_path):
    torch.manual_seed(0)
    theirs = torch.nn.Linear(5, 3)
    st_torch.save_file(theirs.state_dict(), str(tmp_path / "linear.safetensors"))
    sd = lepton.load(tmp_path / "linear.safetensors")
    assert type(sd) is dict and sorted(sd) == ["bias", "weight"]
    ours = nn.Linear(5, 3)
    ours.load_state_dict(sd)
    x = np.random.default_rng(0).standard_normal((4, 5), dtype=np.float32)
    np.testing.assert_allclose(values(ours(lepton.from_numpy(x))), theirs(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-5, atol=1e-6)
    # and the other way: a Lepton state_dict file loads into torch through the safetensors package
    lepton.save(nn.Linear(3, 2).state_dict(), tmp_path / "ours.pt")
    back = torch.nn.Linear(3, 2)
    back.load_state_dict(st_torch.load_file(str(tmp_path / "ours.pt")))


def test_plain_safetensors_dtypes(tmp_path):
    bf = torch.tensor([1.5, -2.0, 3.0e38], dtype=torch.bfloat16)
    st_torch.save_file({"bf": bf, "i": torch.arange(3)}, str(tmp_path / "a"))
    got = lepton.load(tmp_path / "a", map_location="cpu")
    assert got["bf"].dtype == lepton.bfloat16 and values(got["bf"]).tolist() == bf.float().tolist()
    assert got["i"].dtype == lepton.int64 and got["i"].tolist() == [0, 1, 2]
    st_numpy.save_file({"u": np.zeros(2, dtype=np.uint16)}, str(tmp_path / "b"))
    with pytest.raises(ValueError, match="'u' .* has dtype U16, which Lepton tensors do not have"):
        lepton.load(tmp_path / "b")


@pytest.mark.parametrize("best_val_loss", ["tensor", "float"])
def test_a_nanogpt_checkpoint_round_trips_and_resumes(tmp_path, best_val_loss):
    def build():
        lepton.manual_seed(0)
        model = nn.Sequential(nn.Embedding(11, 8), nn.Linear(8, 11))
        return model, optim.AdamW(model.parameters(), lr=1e-2, betas=(0.9, 0.95), weight_decay=0.1)

    x = lepton.randint(0, 11, (4, 6))

    def step(model, opt):
        loss = nn.functional.cross_entropy(model(x).reshape(-1, 11), x.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()

    model, opt = build()
    step(model, opt)
    config = {"out_dir": "out", "eval_interval": 2000, "eval_only": False, "init_from": "scratch",
              "learning_rate": 6e-4, "decay_lr": True, "dtype": "bfloat16", "wandb_run_name": "gpt2",
              "grad_clip": 1.0, "min_lr": 6e-5, "seed_offset": None}
    checkpoint = {"model": model.state_dict(), "optimizer": opt.state_dict(),
                  "model_args": dict(n_layer=2, n_head=2, n_embd=8, block_size=6, bias=False, vocab_size=11,
                                     dropout=0.0),
                  "iter_num": 250, "best_val_loss": lepton.tensor(1.75) if best_val_loss == "tensor" else 1.75,
                  "config": config}
    lepton.save(checkpoint, tmp_path / "ckpt.pt")
    back = lepton.load(tmp_path / "ckpt.pt", map_location="cpu")
    assert_same(back, checkpoint)
    model2, opt2 = build()
    model2.load_state_dict(back["model"])
    opt2.load_state_dict(back["optimizer"])
    step(model, opt)
    step(model2, opt2)
    for (k, a), b in zip(model.state_dict().items(), model2.state_dict().values()):
        np.testing.assert_array_equal(values(a), values(b), err_msg=k)


def split(raw):
    n = int.from_bytes(raw[:8], "little")
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def join(header, data, text=None):
    head = (text or json.dumps(header)).encode()
    return len(head).to_bytes(8, "little") + head + data


def saved(obj):
    buf = io.BytesIO()
    lepton.save(obj, buf)
    return buf.getvalue()


def on_cuda0(obj):
    """The file of obj with its tensors recorded as saved on cuda:0 (no GPU needed)."""
    header, data = split(saved(obj))
    doc = json.loads(header["__metadata__"]["lepton"])
    for row in doc["tensors"]:
        row["device"] = "cuda:0"
    header["__metadata__"]["lepton"] = json.dumps(doc)
    return io.BytesIO(join(header, data))


def test_map_location_forms():
    w = lepton.randn(2, 3)
    for form in ("cpu", lepton.device("cpu"), {"cpu": "cpu"}, {"cuda:0": "cpu"}, lambda s, loc: None):
        got = round_trip({"w": w}, map_location=form)["w"]
        assert got.device == lepton.device("cpu") and np.array_equal(values(got), values(w))
    seen = []
    got = round_trip({"w": w}, map_location=lambda storage, location: seen.append(location) or storage * 2)
    assert seen == ["cpu"] and np.allclose(values(got["w"]), 2 * values(w))
    for form in ("cpu", lepton.device("cpu"), {"cuda:0": "cpu"}, {"cuda:0": lepton.device("cpu")}):
        got = lepton.load(on_cuda0({"w": w, "again": w}), map_location=form)
        assert got["w"].device == lepton.device("cpu") and got["w"] is got["again"]
    seen.clear()
    lepton.load(on_cuda0({"w": w}), map_location=lambda s, loc: seen.append(loc) or s)
    assert seen == ["cuda:0"]
    with pytest.raises(TypeError, match="map_location must be"):
        round_trip(w, map_location=3)
    with pytest.raises(ValueError, match="invalid device 'gpu'"):
        round_trip(w, map_location={"cpu": "gpu"})
    with pytest.raises(TypeError, match=r"returned lepton.float64 \(2, 3\) for 'tensor'"):
        round_trip(w, map_location=lambda s, loc: s.double())


@pytest.mark.skipif(lepton.cuda.is_available(), reason="checks the message given without CUDA")
def test_a_cuda_checkpoint_without_cuda_says_to_map_it():
    for form in (None, {"cuda:1": "cpu"}, "cuda", lambda storage, location: None):  # None: the saved location
        with pytest.raises(RuntimeError, match="'w' would go to cuda:0, but CUDA is not available.*map_location"):
            lepton.load(on_cuda0({"w": lepton.ones(2)}), map_location=form)


@pytest.mark.cuda
def test_cuda_tensors_go_back_to_cuda():
    t = lepton.randn(3, device="cuda")
    back = round_trip({"t": t, "cpu": t.cpu()})
    assert back["t"].is_cuda and not back["cpu"].is_cuda
    assert not round_trip(t, map_location="cpu").is_cuda
    assert not round_trip(t, map_location={"cuda:0": "cpu"}).is_cuda
    assert round_trip(t.cpu(), map_location="cuda:0").is_cuda


def test_files_of_the_first_format_still_load():
    """A checkpoint as Lepton wrote it before lepton-2 (the bytes of its old writer, by hand)."""
    skeleton = {"__dict__": {"str:model": {"__dict__": {"str:w": {"__tensor__": "model/w"}}}, "int:3": "x",
                             "str:t": {"__tuple__": [1, [2.5, None]]}}}
    header = {"model/w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
              "__metadata__": {"lepton": json.dumps(skeleton), "format": "lepton-1"}}
    back = lepton.load(io.BytesIO(join(header, np.array([1.5, -2], dtype="<f4").tobytes())))
    assert_same(back, {"model": {"w": lepton.tensor([1.5, -2.0])}, 3: "x", "t": (1, [2.5, None])})


def test_trainer_checkpoints_round_trip(tmp_path):
    from lepton.train import Trainer

    lepton.manual_seed(0)
    model = nn.Linear(3, 2)
    trainer = Trainer(model, optim.SGD(model.parameters(), lr=0.1), nn.CrossEntropyLoss())
    state = trainer.state_dict()
    lepton.save(state, tmp_path / "t.lep")
    assert_same(lepton.load(tmp_path / "t.lep"), state)


def damaged(kind):
    header, data = split(saved({"a": lepton.ones(4), "b": lepton.zeros(4)}))
    meta = header["__metadata__"]
    if kind == "truncated":
        return join(header, data[:-3])
    if kind == "trailing junk":
        return join(header, data + b"junk")
    if kind == "overlapping offsets":
        header["b"]["data_offsets"] = [8, 24]
        return join(header, data[:24])
    if kind == "gap":
        header["b"]["data_offsets"] = [20, 36]
        return join(header, data + b"\0\0\0\0")
    if kind == "unknown dtype":
        header["a"]["dtype"] = "F7"
    elif kind == "float shape":
        header["a"]["shape"] = [4.0]
    elif kind == "size mismatch":
        header["a"]["shape"] = [2, 3]
    elif kind == "extra field":
        header["a"]["note"] = "x"
    elif kind == "non-string metadata":
        meta["format"] = 2
    elif kind == "newer format":
        meta["format"] = "lepton-9"
    elif kind == "no skeleton":
        del meta["lepton"]
    elif kind == "duplicate key":
        text = json.dumps(header)
        return join(None, data, text.replace('{"a":', '{"b": {}, "a":', 1))
    else:
        doc = json.loads(meta["lepton"])
        if kind == "unknown tag":
            doc["root"] = {"pickle": "os.system"}
        elif kind == "missing row":
            doc["root"]["dict"][1][1] = {"tensor": 7}
        elif kind == "orphan entry":
            doc["tensors"].pop()
            doc["root"]["dict"].pop()
        elif kind == "unhashable key":
            doc["root"]["dict"][0][0] = [1]
        meta["lepton"] = json.dumps(doc)
    return join(header, data)


@pytest.mark.parametrize("kind, message", [
    ("truncated", "truncated file"), ("trailing junk", "trailing bytes"), ("overlapping offsets", "overlaps"),
    ("gap", "leaves a gap"), ("unknown dtype", "dtype 'F7'"), ("float shape", r"shape \[4.0\]"),
    ("size mismatch", "needs 24 bytes"), ("extra field", "exactly the fields"),
    ("non-string metadata", "map strings to strings"), ("newer format", "'lepton-9', which this version"),
    ("no skeleton", "no skeleton in its metadata"),
    ("duplicate key", "duplicate key 'b'"), ("unknown tag", "unknown tag 'pickle'"),
    ("missing row", "row 7 is not in its table"), ("orphan entry", r"\['b'\].*belong to no object"),
    ("unhashable key", "unhashable"),
])
def test_damaged_files_raise_value_errors_naming_the_problem(kind, message):
    with pytest.raises(ValueError, match=message):
        lepton.load(io.BytesIO(damaged(kind)))
