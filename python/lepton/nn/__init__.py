"""lepton.nn: Module, Parameter, layers, losses, init and functional (PyTorch's torch.nn)."""

from lepton.nn import functional, init, utils
from lepton.nn.modules import *  # noqa: F401,F403
from lepton.nn.modules import __all__ as _module_names
from lepton.nn.parameter import Parameter

__all__ = ["Parameter", "functional", "init", "utils", *_module_names]
