"""lepton.save / lepton.load (torch.save / torch.load under `lepton run`): safetensors files
with a JSON skeleton, never pickle.

A file is a safetensors file (https://github.com/huggingface/safetensors): every tensor and
NumPy array of the object is an entry named by its path in the structure ("model/fc.weight",
"optimizer/state/0/exp_avg", made unique with "#2"... where paths coincide), so the safetensors
package reads the arrays. The header's "__metadata__" holds {"format": "lepton-2", "lepton":
JSON}, where the JSON is {"root": node, "tensors": [row...], "ndarrays": [row...]}: the object's
skeleton (lepton/serialization/skeleton.py describes the nodes) and one row per tensor object
({"data": entry, "device": "cuda:0", "requires_grad": true, "parameter": true}, the last two only
when set) or array ({"data": entry}), and, when the object holds whole nn.Modules, "objects":
[{"class": "module:qualname", "state": node}...] (lepton/serialization/objects.py). Loading parses
JSON and copies bytes: it never runs code from the file; weights_only decides which classes and
functions a file may name, as in torch.

Files written by earlier Lepton versions (format lepton-1) still load, and so does any plain
safetensors file (safetensors.torch.save_file, ...), as a flat {name: tensor} dict.
"""

import io
import json
import mmap as _mmap
import os

from lepton.serialization import container
from lepton.serialization.arrays import entry_bytes, entry_dtype, entry_nbytes
from lepton.serialization.loading import FORMAT, load_buffer
from lepton.serialization.location import restorer
from lepton.serialization.objects import add_safe_globals, clear_safe_globals, get_safe_globals, safe_globals
from lepton.serialization.skeleton import Encoder

__all__ = ["save", "load", "add_safe_globals", "clear_safe_globals", "get_safe_globals", "safe_globals"]

_NO_PICKLE = "Lepton never pickles: its files are safetensors with a JSON skeleton"


def save(obj, f, pickle_module=None, pickle_protocol=2, _use_new_zipfile_serialization=True):
    """Writes `obj` to `f`, a path (written atomically: a temporary file renamed into place, so a
    crash mid-write leaves the previous file intact) or a binary file object.

    obj may nest dict, OrderedDict, list, tuple, set, frozenset and argparse.Namespace around
    tensors (any dtype and device; views are saved by value), NumPy arrays and scalars, int,
    float (nan and inf too), complex, bool, str, bytes, bytearray, None, lepton.device and
    lepton.dtype; dict keys may be any of the hashable ones and keep their types. A tensor object
    met twice loads as one object; distinct tensors that are the same view of the same memory
    (tied weights) load sharing storage, as in torch; other overlapping tensors load independent.
    A whole nn.Module is saved as its class's name and its attributes, and module-level classes
    and functions by name (load needs them allowed, see load). Anything else (an optimizer, a
    dataclass, a lambda) raises TypeError naming its type and path. pickle_protocol and
    _use_new_zipfile_serialization choose among torch's pickle formats, so they change nothing
    here; pickle_module raises TypeError.
    """
    if pickle_module is not None:
        raise TypeError(f"save: pickle_module is not supported; {_NO_PICKLE}")
    encoder = Encoder()
    document = encoder.document(obj)
    metadata = {"format": FORMAT, "lepton": json.dumps(document, separators=(",", ":"), allow_nan=False)}
    specs = [(name, entry_dtype(o), o.shape, entry_nbytes(o)) for name, o in encoder.entries.items()]
    buffers = (entry_bytes(o) for o in encoder.entries.values())
    if isinstance(f, (str, bytes, os.PathLike)):
        _write_atomically(os.fsdecode(f), lambda stream: container.write(stream, specs, metadata, buffers))
    elif callable(getattr(f, "write", None)):
        if isinstance(f, io.TextIOBase):
            raise TypeError("save: f is a text-mode file; open it in binary mode ('wb')")
        container.write(f, specs, metadata, buffers)
    else:
        raise TypeError(f"save: f must be a path or a binary file object, not {type(f).__name__}")


def _write_atomically(path, write):
    _remove_stale_temporaries(path)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    dir_fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)


def _remove_stale_temporaries(path):
    """Removes the `path`.tmp-PID files of earlier writes whose process is gone (killed mid-write);
    a live PID's file may be a concurrent write, so it stays."""
    folder, prefix = os.path.dirname(os.path.abspath(path)), os.path.basename(path) + ".tmp-"
    try:
        names = os.listdir(folder)
    except OSError:
        return  # (the write itself will report a missing or unreadable folder)
    for name in names:
        pid = name[len(prefix):]
        if not (name.startswith(prefix) and pid.isascii() and pid.isdigit()) or _alive(int(pid)):
            continue
        try:
            os.remove(os.path.join(folder, name))
        except OSError:  # (removed by another writer first, or not ours to remove: it harms nothing)
            pass


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    except (OverflowError, OSError):  # no process can have such an id
        return False
    return True


def load(f, map_location=None, pickle_module=None, *, weights_only=None, mmap=None, **pickle_load_args):
    """Reads what save() wrote, or a plain safetensors file (as a flat {name: tensor} dict), from a
    path or a binary file object (read from its position to its end).

    Tensors go back where they were saved unless map_location says otherwise, as in torch: a
    device or device string ('cpu', 'cuda:0') for all of them, a dict {'cuda:0': 'cpu'} from saved
    locations to new ones, or a callable(storage, location) returning a tensor or None (for the
    default); Lepton has no storages, so it receives the tensor, on the CPU. NumPy arrays come
    back as NumPy arrays. A saved nn.Module is rebuilt without running its __init__; the classes
    and functions a file names are imported only as weights_only allows: with True (the default
    when None, as in torch 2.6+) they must be allowed with safe_globals([...]) or
    add_safe_globals, else pickle.UnpicklingError names them; with False any importable name is
    taken (trusted files only). mmap=True maps the file instead of reading it into memory
    first (tensors are still copied out of it); it needs a path. pickle_module and torch's
    unpickler keyword arguments raise TypeError. A damaged file raises ValueError saying what is
    wrong with it.
    """
    if pickle_module is not None:
        raise TypeError(f"load: pickle_module is not supported; {_NO_PICKLE}")
    if pickle_load_args:
        raise TypeError(f"load: unexpected keyword argument(s) {', '.join(pickle_load_args)} (torch hands these "
                        f"to its unpickler; {_NO_PICKLE})")
    restore = restorer(map_location)
    if isinstance(f, (str, bytes, os.PathLike)):
        path = os.fsdecode(f)
        with open(path, "rb") as stream:
            if mmap and os.fstat(stream.fileno()).st_size:  # (an empty file can't be mapped)
                buf = _mmap.mmap(stream.fileno(), 0, access=_mmap.ACCESS_READ)
            else:
                buf = stream.read()
        return load_buffer(buf, f"'{path}'", restore, weights_only is not False)
    if not callable(getattr(f, "read", None)):
        raise TypeError(f"load: f must be a path or a binary file object, not {type(f).__name__}")
    if mmap:
        raise ValueError("load: mmap=True needs a file path, not a file object")
    buf = f.read()
    if not isinstance(buf, (bytes, bytearray, memoryview)):
        raise TypeError(f"load: the file object gave {type(buf).__name__}, not bytes; open it in binary mode ('rb')")
    return load_buffer(buf, f"the file object {getattr(f, 'name', type(f).__name__)!r}", restore,
                       weights_only is not False)
