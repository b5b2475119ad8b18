"""Where this process sits in the job, read from the environment.

Launchers disagree on names: torchrun sets RANK/WORLD_SIZE/LOCAL_RANK, MPICH's hydra sets
PMI_RANK/PMI_SIZE (and MPI_LOCALRANKID), Open MPI sets OMPI_COMM_WORLD_*, Slurm sets SLURM_*.
The first name that is set wins, torchrun's first, so an explicit RANK always overrides.
"""

import os

_RANK = ("RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "SLURM_PROCID")
_WORLD = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "SLURM_NTASKS")
_LOCAL_RANK = ("LOCAL_RANK", "MPI_LOCALRANKID", "OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID")
_LOCAL_WORLD = ("LOCAL_WORLD_SIZE", "MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE")

DEFAULT_TIMEOUT_S = 60.0  # a collective that has not finished by then raises instead of hanging


def _first_int(names):
    for name in names:
        value = os.environ.get(name)
        if value not in (None, ""):
            try:
                return int(value)
            except ValueError:
                raise ValueError(f"environment variable {name}={value!r} is not an integer") from None
    return None


def env_rank():
    return _first_int(_RANK)


def env_world_size():
    return _first_int(_WORLD)


def env_local_rank():
    """This process's index among the processes on its node (0 when nothing says otherwise)."""
    local = _first_int(_LOCAL_RANK)
    return 0 if local is None else local


def env_local_world_size():
    return _first_int(_LOCAL_WORLD)


def launched_by_mpi():
    """True when an MPI process manager started us (so MPI_Init will find its peers)."""
    names = ("PMI_RANK", "PMI_FD", "PMIX_RANK", "OMPI_COMM_WORLD_RANK", "HYDRA_CONTROL_FD")
    return any(os.environ.get(n) for n in names)


def env_timeout():
    """LEPTON_DIST_TIMEOUT (seconds) or the default."""
    value = os.environ.get("LEPTON_DIST_TIMEOUT")
    if value in (None, ""):
        return DEFAULT_TIMEOUT_S
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError(f"LEPTON_DIST_TIMEOUT={value!r} is not a number of seconds") from None
    if seconds <= 0:
        raise ValueError(f"LEPTON_DIST_TIMEOUT must be positive, got {value!r}")
    return seconds


def checks_enabled():
    """LEPTON_DIST_CHECK: 1 (default) checks every collective's arguments across ranks; 0 skips that
    (for measuring its cost; every rank must use the same setting)."""
    value = os.environ.get("LEPTON_DIST_CHECK", "1")
    if value not in ("0", "1", ""):
        raise ValueError(f"LEPTON_DIST_CHECK={value!r}: expected 0 or 1")
    return value != "0"


def master_addr_port():
    """(MASTER_ADDR, MASTER_PORT) for a TCP rendezvous, or None when either is unset."""
    addr, port = os.environ.get("MASTER_ADDR"), os.environ.get("MASTER_PORT")
    if not addr or not port:
        return None
    try:
        return addr, int(port)
    except ValueError:
        raise ValueError(f"MASTER_PORT={port!r} is not an integer") from None
