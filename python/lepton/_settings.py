"""Process-wide switches torch programs set: default dtype, print options, matmul precision,
determinism. Each does what it says in Lepton or refuses clearly."""

import numpy as np

from lepton import _C

_DT = _C.dtype
_print = {"precision": 4, "threshold": 1000, "edgeitems": 3, "linewidth": 88, "sci_mode": None}
_matmul_precision = "highest"


def get_default_dtype():
    return _DT.float32


def set_default_dtype(d):
    """Lepton's factories make float32; asking for anything else would silently not happen."""
    if d != _DT.float32:
        raise NotImplementedError(f"set_default_dtype({d!r}): Lepton's default dtype is fixed at float32; pass "
                                  "dtype= to the factories or call .double() on the model instead")


def set_printoptions(precision=None, threshold=None, edgeitems=None, linewidth=None, profile=None, sci_mode=None):
    """Tensor repr formatting, as torch.set_printoptions (profile: 'default', 'short', 'full')."""
    if profile is not None:
        presets = {"default": (4, 1000, 3, 88), "short": (2, 1000, 2, 88), "full": (4, np.inf, 3, 88)}
        if profile not in presets:
            raise ValueError(f"set_printoptions: profile must be one of {sorted(presets)}, got {profile!r}")
        _print.update(zip(("precision", "threshold", "edgeitems", "linewidth"), presets[profile]))
    for key, value in (("precision", precision), ("threshold", threshold), ("edgeitems", edgeitems),
                       ("linewidth", linewidth)):
        if value is not None:
            _print[key] = value
    _print["sci_mode"] = sci_mode


def print_options():
    """The options np.printoptions takes for a tensor repr."""
    opts = {k: _print[k] for k in ("precision", "threshold", "edgeitems", "linewidth")}
    if _print["sci_mode"] is not None:
        opts["suppress"] = not _print["sci_mode"]
    return opts


def set_float32_matmul_precision(precision):
    """'highest' | 'high' | 'medium'. Recorded and reported; Lepton's float32 GEMMs always compute
    in full float32 (there is no TF32 path), which satisfies every level."""
    global _matmul_precision
    if precision not in ("highest", "high", "medium"):
        raise RuntimeError(f"Invalid precision {precision!r}: expected 'highest', 'high' or 'medium'")
    _matmul_precision = precision


def get_float32_matmul_precision():
    return _matmul_precision


_deterministic = False


def use_deterministic_algorithms(mode, *, warn_only=False):
    """Lepton's kernels are deterministic already (fixed reduction orders, no atomics in CPU
    backward passes); the flag is recorded for are_deterministic_algorithms_enabled()."""
    global _deterministic
    _deterministic = bool(mode)


def are_deterministic_algorithms_enabled():
    return _deterministic


def set_num_interop_threads(n):
    """Lepton runs ops on the calling thread (intra-op parallelism is set_num_threads)."""
    if int(n) < 1:
        raise RuntimeError(f"set_num_interop_threads: number of threads must be positive, got {n}")


def get_num_interop_threads():
    return 1
