"""Shared helpers for the tensor-core tests: dtype tables, numpy/torch oracles, subprocess runner."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import lepton

try:  # torch is an optional oracle; torch-specific tests call pytest.importorskip("torch")
    import torch
except ImportError:  # pragma: no cover
    torch = None

ALL_DTYPES = [lepton.bool, lepton.uint8, lepton.int8, lepton.int32, lepton.int64,
              lepton.float16, lepton.bfloat16, lepton.float32, lepton.float64]
INT_DTYPES = [lepton.uint8, lepton.int8, lepton.int32, lepton.int64]
FLOAT_DTYPES = [lepton.float16, lepton.bfloat16, lepton.float32, lepton.float64]

# NumPy has no bfloat16: its values are compared through float32.
NP_DTYPE = {lepton.bool: np.bool_, lepton.uint8: np.uint8, lepton.int8: np.int8, lepton.int32: np.int32,
            lepton.int64: np.int64, lepton.float16: np.float16, lepton.bfloat16: np.float32,
            lepton.float32: np.float32, lepton.float64: np.float64}

# Tolerances per dtype: float32 kernels are vectorised polynomial approximations (rtol 1e-5,
# atol 1e-6); half types keep 11 (float16) and 8 (bfloat16) significant bits.
TOL = {lepton.float16: dict(rtol=2e-3, atol=2e-3), lepton.bfloat16: dict(rtol=1.6e-2, atol=1e-2),
       lepton.float32: dict(rtol=1e-5, atol=1e-6), lepton.float64: dict(rtol=1e-12, atol=1e-12)}


def tol(dtype):
    return TOL.get(dtype, dict(rtol=0, atol=0))


def to_np(t):
    """A NumPy copy of a Lepton tensor (bfloat16 widened to float32)."""
    if t.dtype == lepton.bfloat16:
        t = t.float()
    return np.array(t.cpu().numpy(), copy=True)


def to_torch_dtype(dtype):
    return getattr(torch, dtype.name)


def lt(arr, dtype=None, device=None):
    """A Lepton tensor from a NumPy array or list (bfloat16 via float32)."""
    arr = np.asarray(arr)
    if dtype == lepton.bfloat16:
        return lepton.tensor(arr.astype(np.float32)).to(lepton.bfloat16).to(device or "cpu")
    return lepton.tensor(arr, dtype=dtype, device=device)


def sample(shape, dtype=lepton.float32, seed=0, low=-3.0, high=3.0):
    """Deterministic test data as a NumPy array that is exact in `dtype`."""
    rng = np.random.default_rng(seed)
    if dtype == lepton.bool:
        return rng.random(shape) < 0.5
    if dtype in INT_DTYPES:
        lo = 0 if dtype == lepton.uint8 else int(low * 10)
        return rng.integers(lo, int(high * 10) + 1, size=shape).astype(NP_DTYPE[dtype])
    x = rng.uniform(low, high, size=shape).astype(np.float32)
    if dtype == lepton.bfloat16:  # round to bfloat16's 8-bit mantissa through Lepton itself
        return to_np(lepton.tensor(x).to(lepton.bfloat16))
    return x.astype(NP_DTYPE[dtype])


def assert_close(actual, expected, dtype=None, rtol=None, atol=None, check_dtype=True):
    """Compare a Lepton tensor with a NumPy array/torch tensor: shape, dtype and values (NaNs equal)."""
    if torch is not None and isinstance(expected, torch.Tensor):
        if check_dtype:
            assert actual.dtype.name == str(expected.dtype).replace("torch.", ""), (actual.dtype, expected.dtype)
        expected = expected.float().numpy() if expected.dtype == torch.bfloat16 else expected.numpy()
        check_dtype = False
    expected = np.asarray(expected)
    assert tuple(actual.shape) == expected.shape, (actual.shape, expected.shape)
    if check_dtype and actual.dtype != lepton.bfloat16:
        assert np.dtype(NP_DTYPE[actual.dtype]) == expected.dtype, (actual.dtype, expected.dtype)
    t = tol(dtype or actual.dtype)
    np.testing.assert_allclose(to_np(actual).astype(np.float64) if actual.dtype != lepton.bool else to_np(actual),
                               expected.astype(np.float64) if expected.dtype != np.bool_ else expected,
                               rtol=t["rtol"] if rtol is None else rtol, atol=t["atol"] if atol is None else atol,
                               equal_nan=True)


def run_python(code, env=None, timeout=60):
    """Run `code` in a fresh interpreter; returns the CompletedProcess (a crash shows as rc < 0)."""
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=full_env, timeout=timeout)


def pytest_configure(config):
    config.addinivalue_line("markers", "cuda: needs a CUDA device (skipped when lepton.cuda.is_available() is False)")


def pytest_collection_modifyitems(config, items):
    if lepton.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="CUDA is not available")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed():
    lepton.manual_seed(0)
    yield
