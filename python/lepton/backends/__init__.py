"""torch.backends: the flags programs set for cuDNN, TF32 and friends. Lepton has its own kernels
and no cuDNN/MPS/oneDNN, so availability queries answer False and the tuning flags are recorded
without changing results (Lepton's float32 GEMM never uses TF32)."""

from lepton.backends import cuda, cudnn, mkldnn, mps, openmp

__all__ = ["cuda", "cudnn", "mkldnn", "mps", "openmp"]
