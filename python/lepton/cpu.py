"""lepton.cpu (torch.cpu): the CPU as a device, and the memory statistics torch offers only for
CUDA (lepton.cuda.*), here for host tensors: bytes in blocks handed out by Lepton's CPU allocator
(what tensors hold, not the process's whole RSS) and their peak."""

from lepton import _C

__all__ = ["is_available", "device_count", "current_device", "synchronize", "memory_allocated",
           "max_memory_allocated", "reset_peak_memory_stats", "empty_cache"]


def is_available():
    return True


def device_count():
    return 1


def current_device():
    return "cpu"


def synchronize(device=None):
    """CPU ops finish before they return: nothing is queued."""


def memory_allocated(device=None):
    """Bytes currently held by CPU tensors (allocation sizes, rounded to their alignment)."""
    return _C._cpu_memory_allocated()


def max_memory_allocated(device=None):
    """The most bytes CPU tensors held at once since the start or the last reset_peak_memory_stats."""
    return _C._cpu_max_memory_allocated()


def reset_peak_memory_stats(device=None):
    """Starts max_memory_allocated afresh from what is allocated now."""
    _C._cpu_reset_peak_memory_stats()


def empty_cache():
    """Returns the allocator's cached large blocks to the system."""
    _C._cpu_empty_cache()
