"""Lepton: a compact, fast deep-learning training engine with its own CPU and CUDA kernels."""

from lepton import _C
from lepton._C import (
    OutOfMemoryError,
    Tensor,
    cat,
    device,
    dtype,
    from_dlpack,
    from_numpy,
    get_num_threads,
    get_rng_state,
    initial_seed,
    promote_types,
    set_num_threads,
    set_rng_state,
    stack,
    where,
)
from lepton import autograd, cpu, cuda
from lepton.autograd import enable_grad, no_grad, set_grad_enabled
from lepton._inference import inference_mode, is_inference_mode_enabled
from lepton._C import is_grad_enabled
from lepton._creation import (
    BFloat16Tensor,
    BoolTensor,
    ByteTensor,
    CharTensor,
    DoubleTensor,
    FloatTensor,
    HalfTensor,
    IntTensor,
    LongTensor,
    arange,
    as_tensor,
    eye,
    randint,
    randperm,
    empty,
    empty_like,
    full,
    linspace,
    ones,
    rand,
    randn,
    zeros,
    full_like,
    ones_like,
    rand_like,
    randint_like,
    randn_like,
    tensor,
    zeros_like,
)
from lepton._generator import Generator, default_generator, manual_seed, seed
from lepton._settings import (
    are_deterministic_algorithms_enabled,
    get_default_dtype,
    get_float32_matmul_precision,
    get_num_interop_threads,
    set_default_dtype,
    set_float32_matmul_precision,
    set_num_interop_threads,
    set_printoptions,
    use_deterministic_algorithms,
)
from lepton import _tensor_methods  # noqa: F401  (installs mm, gather, sort, topk, masked_fill, ...)
from lepton._functions import *  # noqa: F401,F403  (torch-style free functions)
from lepton._functions import __all__ as _function_names
from lepton._info import info
from lepton.io import load, save
from lepton import _tensor_repr  # noqa: F401  (installs Tensor.__repr__ and friends)
from lepton import _tensor_copy  # noqa: F401  (installs Tensor.__deepcopy__)
from lepton.jit import compile  # noqa: A004  (torch.compile: the model unchanged)
from lepton import nn, optim
from lepton import amp
from lepton.amp import autocast, get_autocast_dtype, is_autocast_enabled


def __getattr__(name):  # lepton.data and lepton.datasets load on first use (they add ~20% to import time)
    if name in ("data", "datasets", "vision", "utils", "backends", "jit", "testing", "accelerator", "distributed",
                "onnx", "io"):
        import importlib

        return importlib.import_module(f"lepton.{name}")
    raise AttributeError(f"module 'lepton' has no attribute '{name}'" + _under_torch_note(name))


def _under_torch_note(name):
    import sys

    compat = sys.modules.get("lepton.compat")
    return f" (the program asked for torch.{name}, which Lepton does not provide)" if compat and compat.is_installed() else ""


__version__ = _C._build_info()["version"]

bool = _C.dtype.bool  # noqa: A001  (shadows the builtin inside this namespace only, as torch does)
uint8 = _C.dtype.uint8
int8 = _C.dtype.int8
int32 = _C.dtype.int32
int64 = _C.dtype.int64
float16 = _C.dtype.float16
bfloat16 = _C.dtype.bfloat16
float32 = _C.dtype.float32
float64 = _C.dtype.float64
half, float, double, int, long = float16, float32, float64, int32, int64  # noqa: A001

__all__ = [
    "Tensor", "OutOfMemoryError", "device", "dtype", "tensor", "from_numpy", "from_dlpack",
    "empty", "zeros", "ones", "full", "arange", "linspace", "rand", "randn", "randint",
    "empty_like", "zeros_like", "ones_like", "full_like", "rand_like", "randn_like", "randint_like",
    "manual_seed", "initial_seed", "get_rng_state", "set_rng_state", "cat", "stack", "where",
    "Generator", "default_generator", "seed", "randperm", "eye", "as_tensor", "compile",
    "get_default_dtype", "set_default_dtype", "set_printoptions", "set_float32_matmul_precision",
    "get_float32_matmul_precision", "use_deterministic_algorithms", "are_deterministic_algorithms_enabled",
    "set_num_interop_threads", "get_num_interop_threads",
    "FloatTensor", "DoubleTensor", "HalfTensor", "BFloat16Tensor", "LongTensor", "IntTensor", "ByteTensor",
    "CharTensor", "BoolTensor",
    "promote_types", "set_num_threads", "get_num_threads", "info", "cuda", "autograd", "nn", "optim",
    "no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled", "save", "load",
    "inference_mode", "is_inference_mode_enabled",
    "amp", "autocast", "is_autocast_enabled", "get_autocast_dtype",
    "bool", "uint8", "int8", "int32", "int64", "float16", "bfloat16", "float32", "float64",
    *_function_names,
]
