"""lepton.info(): what this build and this machine offer."""

import importlib.util

from lepton import _C


def info():
    """A dict describing the build (version, compiler, CPU ISA, threads, CUDA) and what is found."""
    d = dict(_C._build_info())
    d["nccl_package"] = importlib.util.find_spec("nvidia") is not None and \
        importlib.util.find_spec("nvidia.nccl") is not None
    d["mpi4py"] = importlib.util.find_spec("mpi4py") is not None
    return d
