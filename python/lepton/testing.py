"""torch.testing: assert_close with torch's default tolerances per dtype."""

import numpy as np

from lepton import _C

_DT = _C.dtype
# (rtol, atol) torch uses when none are given
_TOLERANCES = {_DT.float16: (1e-3, 1e-5), _DT.bfloat16: (1.6e-2, 1e-5), _DT.float32: (1.3e-6, 1e-5),
               _DT.float64: (1e-7, 1e-7)}


def _as_array(x):
    if isinstance(x, _C.Tensor):
        host = x.detach().cpu()
        return (host.float() if x.dtype in (_DT.float16, _DT.bfloat16) else host).numpy(), x.dtype
    return np.asarray(x), None


def assert_close(actual, expected, *, rtol=None, atol=None, equal_nan=False, check_dtype=True, msg=None, **_):
    """Raises AssertionError naming the worst mismatch when |actual - expected| > atol + rtol * |expected|."""
    if isinstance(actual, (list, tuple)) and isinstance(expected, (list, tuple)):
        if len(actual) != len(expected):
            raise AssertionError(f"sequences differ in length: {len(actual)} != {len(expected)}")
        for a, e in zip(actual, expected):
            assert_close(a, e, rtol=rtol, atol=atol, equal_nan=equal_nan, check_dtype=check_dtype, msg=msg)
        return
    a, adt = _as_array(actual)
    e, edt = _as_array(expected)
    if check_dtype and adt is not None and edt is not None and adt != edt:
        raise AssertionError(msg or f"The values for attribute 'dtype' do not match: {adt} != {edt}.")
    if a.shape != e.shape:
        raise AssertionError(msg or f"The values for attribute 'shape' do not match: {a.shape} != {e.shape}.")
    if (rtol is None) != (atol is None):
        raise ValueError("assert_close: give both rtol and atol, or neither")
    if rtol is None:
        rtol, atol = _TOLERANCES.get(adt, (0.0, 0.0))
    if not np.allclose(a, e, rtol=rtol, atol=atol, equal_nan=equal_nan):
        diff = np.abs(a.astype(np.float64) - e.astype(np.float64))
        diff = np.where(np.isnan(diff), np.inf, diff)
        worst = np.unravel_index(int(np.argmax(diff)), diff.shape) if diff.size else ()
        raise AssertionError(msg or f"Tensor-likes are not close! Greatest absolute difference: {diff.max()} at index "
                                    f"{worst} (up to {atol} allowed, rtol {rtol})")
