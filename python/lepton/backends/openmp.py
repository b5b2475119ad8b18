"""torch.backends.openmp: Lepton's CPU kernels are parallelised with OpenMP."""


def is_available():
    return True
