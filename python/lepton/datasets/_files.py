"""Locating dataset files and checking them against SHA-256 sums.

The bundled files (files/ beside this module) are checked against files/SHA256SUMS the first
time a process reads them; a user directory is checked when it holds a SHA256SUMS listing the
file. A file is hashed once per process unless it changes (size or modification time).
"""

import hashlib
from pathlib import Path

__all__ = ["BUNDLED", "locate", "verify", "cached"]

BUNDLED = Path(__file__).resolve().parent / "files"
_verified = set()  # (path, size, mtime_ns) already hashed and found good
_cache = {}  # (loader, path, size, mtime_ns) -> parsed contents


def _stamp(path):
    st = path.stat()
    return str(path.resolve()), st.st_size, st.st_mtime_ns


def _sums(directory):
    f = directory / "SHA256SUMS"
    if not f.is_file():
        return {}
    out = {}
    for line in f.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2:
            out[parts[1].lstrip("*")] = parts[0].lower()
    return out


def verify(path, expected):
    """Raise ValueError naming `path` unless its SHA-256 is `expected`."""
    key = _stamp(path)
    if key in _verified:
        return
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    if h.hexdigest() != expected:
        raise ValueError(f"'{path}' is corrupt or truncated: its SHA-256 is {h.hexdigest()}, expected {expected} "
                         f"(size {key[1]} bytes); restore the file or reinstall lepton")
    _verified.add(key)


def locate(root, name, missing_hint=""):
    """The path of `name` (or its uncompressed form, without .gz) in `root` (None: the bundled files),
    checked against the directory's SHA256SUMS when it lists the file."""
    directory = BUNDLED if root is None else Path(root).expanduser()
    candidates = [directory / name] + ([directory / name[:-3]] if name.endswith(".gz") else [])
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise FileNotFoundError(f"{' or '.join(repr(str(p)) for p in candidates)} not found{missing_hint}")
    expected = _sums(directory).get(path.name)
    if expected is not None:
        verify(path, expected)
    elif root is None:
        raise ValueError(f"'{path}' has no entry in {BUNDLED / 'SHA256SUMS'}; the installation is damaged")
    return path


def cached(loader, path):
    """loader(path), parsed once per process while the file is unchanged."""
    key = (loader.__qualname__, *_stamp(path))
    if key not in _cache:
        _cache[key] = loader(path)
    return _cache[key]
