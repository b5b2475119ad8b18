"""lepton.save / lepton.load at their edges: dict keys that look like format words, None and bare
values as the saved object, files damaged or built by hand byte by byte (checked as strictly as
the safetensors format, whose own package is the oracle), `lepton eval` on such a file, and the
temporary files of writes that were killed."""

import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import lepton
from lepton import cli

F32x2 = np.array([1.5, -2.0], dtype="<f4").tobytes()


def saved(obj):
    buf = io.BytesIO()
    lepton.save(obj, buf)
    return buf.getvalue()


def round_trip(obj):
    return lepton.load(io.BytesIO(saved(obj)))


def file_of(header, data=b"", head=None):
    """A file's bytes: the 8-byte size, the header (JSON of `header`, or the bytes `head`), the data."""
    head = json.dumps(header).encode() if head is None else head
    return len(head).to_bytes(8, "little") + head + data


def entry(dtype="F32", shape=(2,), offsets=(0, 8)):
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


def load_bytes(raw, tmp_path, name="bad.safetensors"):
    path = tmp_path / name
    path.write_bytes(raw)
    return lepton.load(path)


def assert_refused(raw, tmp_path, match):
    """lepton.load refuses the file with a ValueError naming the file and the problem."""
    with pytest.raises(ValueError, match=match) as e:
        load_bytes(raw, tmp_path)
    assert str(tmp_path / "bad.safetensors") in str(e.value)


def safetensors_refuses(raw):
    st = pytest.importorskip("safetensors")
    try:
        st.deserialize(raw)
    except Exception:  # safetensors_rust.SafetensorError
        return True
    return False


# ---- dict keys and root objects

def test_keys_keep_their_types_beside_format_words():
    obj = {True: lepton.ones(1), 2: lepton.zeros(2), "": lepton.full((1,), 3.0), "tensor": lepton.ones(3),
           "__metadata__": lepton.ones(2), "True": 6, "2": {"": 7, 0: "zero", False: "never"}, None: 8, 2.5: 9}
    back = round_trip(obj)
    assert [(type(k), k) for k in back] == [(type(k), k) for k in obj]
    assert [(type(k), k) for k in back["2"]] == [(str, ""), (int, 0)]  # (0 and False are one key in Python)
    for k, v in obj.items():
        if isinstance(v, lepton.Tensor):
            assert back[k].tolist() == v.tolist()
    # no entry takes the name "__metadata__" (the header's own key)
    raw = saved(obj)
    header = json.loads(raw[8:8 + int.from_bytes(raw[:8], "little")])
    assert header["__metadata__"].keys() == {"format", "lepton"}


def test_keys_round_trip_as_in_torch():
    torch = pytest.importorskip("torch")
    obj = {1: 1, True: 2, "": 3, "tensor": 4, "__metadata__": 5, (1, "a"): 6}
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    theirs = torch.load(buf)
    ours = round_trip(obj)
    assert [(type(k), k, v) for k, v in ours.items()] == [(type(k), k, v) for k, v in theirs.items()]


@pytest.mark.parametrize("obj", [None, "a string", "", 0, 2.5, True, [], {}, (), [None], {"": None}])
def test_any_root_value_loads_as_itself(obj):
    back = round_trip(obj)
    assert type(back) is type(obj) and back == obj


def lepton2_file(doc, entries=None, data=b""):
    return file_of({**(entries or {}), "__metadata__": {"format": "lepton-2", "lepton": json.dumps(doc)}}, data)


def test_a_skeleton_that_is_not_a_document_is_refused(tmp_path):
    assert_refused(lepton2_file("hello", {"a": entry()}, F32x2), tmp_path, r"the skeleton must be \{\"root\"")


def test_tensors_outside_the_root_are_refused(tmp_path):
    doc = {"root": "hello", "tensors": [{"data": "a", "device": "cpu"}], "ndarrays": []}
    assert_refused(lepton2_file(doc, {"a": entry()}, F32x2), tmp_path, r"entries \['a'\] belong to no object")
    doc = {"root": [{"tensor": 0}], "tensors": [{"data": "a", "device": "cpu"}], "ndarrays": [{"data": "b"}]}
    entries = {"a": entry(), "b": entry(offsets=(8, 16))}
    assert_refused(lepton2_file(doc, entries, F32x2 * 2), tmp_path, r"entries \['b'\] belong to no object")


def lepton1_file(skeleton_text, entries=None, data=b""):
    """A file as Lepton's first format (lepton-1) wrote it: its skeleton was json.dumps output."""
    return file_of({**(entries or {}), "__metadata__": {"lepton": skeleton_text, "format": "lepton-1"}}, data)


def test_first_format_files_still_load_with_their_key_types_and_non_finite_floats(tmp_path):
    skeleton = {"__dict__": {"int:0": {"__tensor__": "0"}, "str:0": float("inf"), "str:best": float("nan"),
                             "str:t": {"__tuple__": [1, None]}}}
    back = load_bytes(lepton1_file(json.dumps(skeleton), {"0": entry()}, F32x2), tmp_path)
    assert list(back) == [0, "0", "best", "t"] and back[0].tolist() == [1.5, -2.0]
    assert back["0"] == float("inf") and back["best"] != back["best"] and back["t"] == (1, None)
    assert load_bytes(lepton1_file("null"), tmp_path) is None


def test_first_format_files_must_place_every_tensor(tmp_path):
    assert_refused(lepton1_file('"hello"', {"a": entry()}, F32x2), tmp_path, r"entries \['a'\] belong to no object")


# ---- the container, byte by byte

def good():
    return file_of({"a": entry(), "b": entry(offsets=(8, 16))}, F32x2 * 2)


def test_the_hand_built_file_is_good(tmp_path):
    got = load_bytes(good(), tmp_path)
    assert got["a"].tolist() == got["b"].tolist() == [1.5, -2.0]
    assert not safetensors_refuses(good())


DAMAGED = {  # name: (file bytes, what the error says)
    "overlapping offsets": (file_of({"a": entry(), "b": entry(offsets=(4, 12))}, F32x2 + F32x2[:4]),
                            r"'b' starts at data byte 4, which overlaps the entry before it \(expected 8\)"),
    "shifted offsets": (file_of({"a": entry(offsets=(4, 12))}, F32x2 + F32x2[:4]),
                        r"'a' starts at data byte 4, which leaves a gap before it \(expected 0\)"),
    "gap between": (file_of({"a": entry(), "b": entry(offsets=(12, 20))}, F32x2 * 2 + F32x2[:4]),
                    r"'b' starts at data byte 12, which leaves a gap"),
    "float shape": (file_of({"a": entry(shape=(2.0,))}, F32x2), r"'a' has shape \[2\.0\], not a list of non-negative"),
    "string shape": (file_of({"a": entry(shape=("2",))}, F32x2), r"'a' has shape \['2'\]"),
    "bool shape": (file_of({"a": entry(shape=(True, 2))}, F32x2), r"'a' has shape \[True, 2\]"),
    "negative shape": (file_of({"a": entry(shape=(-2,))}, F32x2), r"'a' has shape \[-2\]"),
    "shape not a list": (file_of({"a": {**entry(), "shape": 2}}, F32x2), r"'a' has shape 2"),
    "offsets too short for the shape": (file_of({"a": entry(shape=(3,))}, F32x2),
                                        r"'a' \(F32, shape \[3\]\) needs 12 bytes, its data_offsets \[0, 8\] span 8"),
    "float offsets": (file_of({"a": entry(offsets=(0.0, 8))}, F32x2), r"'a' has data_offsets \[0\.0, 8\]"),
    "reversed offsets": (file_of({"a": entry(shape=(0,), offsets=(8, 0))}, F32x2), r"'a' has data_offsets \[8, 0\]"),
    "junk after the data": (file_of({"a": entry()}, F32x2 + b"junk"),
                            r"cover 8 bytes of data but the file holds 12 \(trailing bytes\)"),
    "truncated data": (file_of({"a": entry()}, F32x2[:6]), r"holds 6 \(truncated file\)"),
    "byte-order mark": (file_of(None, F32x2, head="\ufeff".encode() + json.dumps({"a": entry()}).encode()),
                        r"the header must start with '\{', not b'\\xef\\xbb\\xbf\{'"),
    "space before the header": (file_of(None, F32x2, head=b" " + json.dumps({"a": entry()}).encode()),
                                r"the header must start with '\{', not b' \{"),
    "header not UTF-8": (file_of(None, F32x2, head=b'{"a\xff": ' + json.dumps(entry()).encode() + b"}"),
                         r"unreadable header: 'utf-8' codec can't decode byte 0xff"),
    "header in UTF-16": (file_of(None, F32x2, head=json.dumps({"a": entry()}).encode("utf-16-le")),
                         r"unreadable header"),
    "NUL padding": (file_of(None, F32x2, head=json.dumps({"a": entry()}).encode() + b"\0\0"), r"unreadable header"),
    "header too large for the file": (b"\xff" * 8 + b"{}", r"a header of \d+ bytes does not fit in a file of 10"),
    "a number out of range": (file_of(None, F32x2, head=b'{"a": {"dtype": "F32", "shape": [1e400], '
                                                        b'"data_offsets": [0, 8]}}'),
                              r"unreadable header: the number 1e400 is out of range"),
    "metadata not strings": (file_of({"a": entry(), "__metadata__": {"x": 1}}, F32x2),
                             r"__metadata__ must map strings to strings"),
    "duplicate names": (file_of(None, F32x2, head=b'{"a": ' + json.dumps(entry()).encode() + b', "a": '
                                                  + json.dumps(entry()).encode() + b"}"), r"duplicate key 'a'"),
    "an extra field": (file_of({"a": {**entry(), "x": 1}}, F32x2), r"entry 'a' must have exactly the fields"),
}
# safetensors 0.8 itself lets these through (the format's text forbids the first; the others
# are ours: one name, one set of fields per entry); the rest it refuses too
SAFETENSORS_ACCEPTS = {"space before the header", "duplicate names", "an extra field"}


@pytest.mark.parametrize("damage", DAMAGED)
def test_damaged_files_are_refused_naming_the_problem(damage, tmp_path):
    raw, match = DAMAGED[damage]
    assert_refused(raw, tmp_path, match)
    if damage not in SAFETENSORS_ACCEPTS:
        assert safetensors_refuses(raw)


def test_padding_spaces_after_the_header_are_allowed(tmp_path):
    raw = file_of(None, F32x2, head=json.dumps({"a": entry()}).encode() + b"    ")
    assert load_bytes(raw, tmp_path)["a"].tolist() == [1.5, -2.0]
    assert not safetensors_refuses(raw)


@pytest.mark.parametrize("dtype,nbytes", [("I16", 4), ("U16", 4), ("U32", 8), ("U64", 16), ("C64", 16)])
def test_dtypes_lepton_tensors_lack_are_named_as_unsupported(dtype, nbytes, tmp_path):
    raw = file_of({"a": entry(dtype=dtype, offsets=(0, nbytes))}, bytes(nbytes))
    with pytest.raises(ValueError, match=rf"'a' in '.*bad.safetensors' has dtype {dtype}, which Lepton tensors "
                                         rf"do not have \(unsupported; they are BOOL, U8, I8, I32, I64"):
        load_bytes(raw, tmp_path)
    assert not safetensors_refuses(raw)


@pytest.mark.parametrize("dtype", ["F8_E4M3", "F8_E5M2", "F8_E8M0", "F4"])
def test_small_float_dtypes_are_named_as_unsupported(dtype, tmp_path):
    raw = file_of({"a": entry(dtype=dtype, offsets=(0, 2))}, bytes(2))
    assert_refused(raw, tmp_path, rf"'a' has dtype '{dtype}', a safetensors dtype Lepton does not support")


def test_unknown_dtypes_are_named(tmp_path):
    raw = file_of({"a": entry(dtype="F128")}, F32x2)
    assert_refused(raw, tmp_path, r"'a' has dtype 'F128', not a safetensors dtype")


def test_non_finite_numbers_in_the_skeleton_are_refused(tmp_path):
    for text in ('{"root": 1e400, "tensors": [], "ndarrays": []}', '{"root": NaN, "tensors": [], "ndarrays": []}'):
        raw = file_of({"__metadata__": {"format": "lepton-2", "lepton": text}})
        assert_refused(raw, tmp_path, r"unreadable skeleton: (the number 1e400 is out of range|NaN is not JSON)")
    assert round_trip(float("inf")) == float("inf")  # saved the way the skeleton spells it


# ---- `lepton eval` on a damaged checkpoint

def train_checkpoint(path):
    """A checkpoint as `lepton train mnist-mlp` writes it (untrained weights)."""
    from lepton.train import recipes
    from lepton.train.trainer import CHECKPOINT_FORMAT

    config = recipes.make_config("mnist-mlp")
    lepton.save({"format": CHECKPOINT_FORMAT, "config": config, "model": recipes.build_model(config).state_dict()},
                path)


@pytest.mark.parametrize("old,new", [(b'\\"batch_size\\",128', b'\\"batch_size\\",1e400'),
                                     (b'"shape":[', b'"shape":[1e400,')])
def test_eval_of_a_checkpoint_with_an_out_of_range_number_is_a_clear_error(old, new, tmp_path, capsys):
    path = tmp_path / "checkpoint.safetensors"
    train_checkpoint(path)
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    assert old in raw[8:8 + n]
    head = raw[8:8 + n].replace(old, new, 1)
    path.write_bytes(len(head).to_bytes(8, "little") + head + raw[8 + n:])
    assert cli.main(["eval", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"lepton eval: error: load: '{path}' is not a valid Lepton checkpoint") and \
        "the number 1e400 is out of range" in err and "Traceback" not in err


# ---- temporary files of killed writes

def dead_pid():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_a_save_removes_the_temporary_files_of_dead_writers_only(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    dead, live = f"ckpt.safetensors.tmp-{dead_pid()}", f"ckpt.safetensors.tmp-{os.getppid()}"
    others = ["ckpt.safetensors.tmp-x1", "other.safetensors.tmp-1", f"ckpt.safetensorsx.tmp-{dead_pid()}"]
    for name in [dead, live, *others]:
        (tmp_path / name).write_bytes(b"half a checkpoint")
    lepton.save({"w": lepton.ones(2)}, path)
    assert lepton.load(path)["w"].tolist() == [1.0, 1.0]
    assert sorted(os.listdir(tmp_path)) == sorted(["ckpt.safetensors", live, *others])


def test_a_killed_write_leaves_a_file_the_next_save_removes(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    script = ("import os, lepton, lepton.io as lio\n"
              "def die(stream): stream.write(b'partial'); stream.flush(); os._exit(9)\n"
              f"lio._write_atomically({str(path)!r}, die)\n")
    assert subprocess.run([sys.executable, "-c", script]).returncode == 9
    (stale,) = os.listdir(tmp_path)
    assert stale.startswith("ckpt.safetensors.tmp-")
    lepton.save([1, 2], path)
    assert os.listdir(tmp_path) == ["ckpt.safetensors"] and lepton.load(path) == [1, 2]
