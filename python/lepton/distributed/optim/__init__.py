"""lepton.distributed.optim (torch.distributed.optim): optimizers for data-parallel training."""

from lepton.distributed.optim.zero import ZeroRedundancyOptimizer

__all__ = ["ZeroRedundancyOptimizer"]
