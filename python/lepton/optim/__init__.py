"""lepton.optim: optimizers on fused multi-tensor kernels (SGD, Adam, AdamW), RMSprop and
Adagrad, and lr schedulers (lepton.optim.lr_scheduler), with torch.optim's semantics.

L1 regularisation has no optimizer option (torch has none either): add the penalty to the loss,
    loss = loss + l1 * sum(p.abs().sum() for p in model.parameters())
whose gradient, l1 * sign(p), backward() adds to each p.grad before optimizer.step().
"""

from lepton.optim import lr_scheduler
from lepton.optim.adagrad import Adagrad
from lepton.optim.adam import Adam, AdamW
from lepton.optim.optimizer import Optimizer
from lepton.optim.rmsprop import RMSprop
from lepton.optim.sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "lr_scheduler"]
