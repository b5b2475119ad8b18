"""torch.accelerator: the current accelerator (CUDA when a GPU is present), else None."""

from lepton import _C, cuda


def is_available():
    return cuda.is_available()


def current_accelerator(check_available=False):
    """lepton.device('cuda') when Lepton was built with CUDA and sees a GPU, else None."""
    return _C.device("cuda") if cuda.is_available() else None


def device_count():
    return cuda.device_count() if cuda.is_available() else 0


def current_device_index():
    return cuda.current_device() if cuda.is_available() else -1


current_device_idx = current_device_index


def set_device_index(device):
    cuda.set_device(device)


set_device_idx = set_device_index


def synchronize(device=None):
    if cuda.is_available():
        cuda.synchronize(device)
