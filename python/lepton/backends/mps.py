"""torch.backends.mps: not part of Lepton (its kernels are its own), so never available."""


def is_available():
    return False


def is_built():
    return False
