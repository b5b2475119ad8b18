"""lepton.optim: optimizers with torch.optim's names, options and semantics: SGD, Adam and AdamW
on fused multi-tensor kernels; RMSprop, Adagrad, Adadelta, Adamax, NAdam, RAdam and ASGD composed
of tensor ops; LBFGS with an optional strong-Wolfe line search; lr schedulers
(lepton.optim.lr_scheduler).

L1 regularisation has no optimizer option (torch has none either): add the penalty to the loss,
    loss = loss + l1 * sum(p.abs().sum() for p in model.parameters())
whose gradient, l1 * sign(p), backward() adds to each p.grad before optimizer.step().
"""

from lepton.optim import lr_scheduler
from lepton.optim.adadelta import Adadelta
from lepton.optim.adagrad import Adagrad
from lepton.optim.adam import Adam, AdamW
from lepton.optim.adamax import Adamax
from lepton.optim.asgd import ASGD
from lepton.optim.lbfgs import LBFGS
from lepton.optim.nadam import NAdam
from lepton.optim.optimizer import Optimizer
from lepton.optim.radam import RAdam
from lepton.optim.rmsprop import RMSprop
from lepton.optim.sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "Adamax", "NAdam", "RAdam", "ASGD",
           "LBFGS", "lr_scheduler"]
