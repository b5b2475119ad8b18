"""The layers, losses and containers of lepton.nn."""

from lepton.nn.modules.activation import GELU, LogSoftmax, ReLU, Sigmoid, SiLU, Softmax, Tanh
from lepton.nn.modules.attention import MultiheadAttention
from lepton.nn.modules.containers import ModuleDict, ModuleList, ParameterList, Sequential
from lepton.nn.modules.conv import Conv2d
from lepton.nn.modules.dropout import Dropout
from lepton.nn.modules.flatten import Flatten, Unflatten
from lepton.nn.modules.linear import Identity, Linear
from lepton.nn.modules.loss import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, L1Loss, MSELoss, NLLLoss
from lepton.nn.modules.module import Module
from lepton.nn.modules.normalization import BatchNorm1d, BatchNorm2d, LayerNorm
from lepton.nn.modules.pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d
from lepton.nn.modules.rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNBase, RNNCell, RNNCellBase
from lepton.nn.modules.sparse import Embedding
from lepton.nn.modules.transformer import GPTBlock, TransformerEncoder, TransformerEncoderLayer

__all__ = ["Module", "Sequential", "ModuleList", "ModuleDict", "ParameterList", "Identity", "Linear",
           "Flatten", "Unflatten", "ReLU", "GELU", "SiLU", "Tanh", "Sigmoid", "Softmax", "LogSoftmax", "Dropout",
           "MSELoss", "L1Loss", "BCELoss", "BCEWithLogitsLoss", "NLLLoss", "CrossEntropyLoss"]
__all__ += ["RNNBase", "RNN", "LSTM", "GRU", "RNNCellBase", "RNNCell", "LSTMCell", "GRUCell"]
__all__ += ["Conv2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d"]
__all__ += ["LayerNorm", "BatchNorm1d", "BatchNorm2d", "Embedding"]
__all__ += ["MultiheadAttention"]
__all__ += ["TransformerEncoderLayer", "TransformerEncoder", "GPTBlock"]
