"""lepton.cuda: CUDA availability and memory, as in torch.cuda."""

from lepton import _C

_cuda = _C._cuda


def is_available():
    """True when Lepton was built with CUDA and a driver and device are present."""
    return _cuda.is_compiled() and _cuda.device_count() > 0


def device_count():
    return _cuda.device_count()


def synchronize(device=None):
    _cuda.synchronize(_index(device))


def memory_allocated(device=None):
    """Bytes currently handed out by Lepton's caching allocator on `device`."""
    return _cuda.memory_allocated(_index(device) or 0)


def memory_reserved(device=None):
    """Bytes held from the driver (allocated plus cached) on `device`."""
    return _cuda.memory_reserved(_index(device) or 0)


def empty_cache():
    """Return cached, unused blocks to the driver."""
    _cuda.empty_cache()


def get_device_name(device=None):
    return _cuda.get_device_name(_index(device) or 0)


def _index(device):
    if device is None:
        return None
    if isinstance(device, int):
        return device
    d = _C.device(device)
    if d.type != "cuda":
        raise ValueError(f"expected a CUDA device, got {d}")
    return d.index
