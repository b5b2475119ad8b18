"""The layers, losses and containers of lepton.nn."""

from lepton.nn.modules.activation import GELU, LogSoftmax, ReLU, Sigmoid, SiLU, Softmax, Tanh
from lepton.nn.modules.containers import ModuleDict, ModuleList, ParameterList, Sequential
from lepton.nn.modules.dropout import Dropout
from lepton.nn.modules.flatten import Flatten, Unflatten
from lepton.nn.modules.linear import Identity, Linear
from lepton.nn.modules.loss import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, L1Loss, MSELoss, NLLLoss
from lepton.nn.modules.module import Module

__all__ = ["Module", "Sequential", "ModuleList", "ModuleDict", "ParameterList", "Identity", "Linear",
           "Flatten", "Unflatten", "ReLU", "GELU", "SiLU", "Tanh", "Sigmoid", "Softmax", "LogSoftmax", "Dropout",
           "MSELoss", "L1Loss", "BCELoss", "BCEWithLogitsLoss", "NLLLoss", "CrossEntropyLoss"]
