"""torch.backends.cudnn: Lepton has no cuDNN (its convolutions are its own kernels)."""

enabled = True
benchmark = False
deterministic = False
allow_tf32 = True


def is_available():
    return False


def version():
    return None
