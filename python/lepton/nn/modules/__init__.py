"""The layers, losses and containers of lepton.nn."""

from lepton.nn.modules.activation import (CELU, ELU, GELU, GLU, SELU, Hardsigmoid, Hardswish, Hardtanh, LeakyReLU,
                                          LogSigmoid, LogSoftmax, Mish, PReLU, ReLU, ReLU6, Sigmoid, SiLU, Softmax,
                                          Softplus, Softsign, Tanh)
from lepton.nn.modules.attention import MultiheadAttention
from lepton.nn.modules.bilinear import Bilinear
from lepton.nn.modules.containers import ModuleDict, ModuleList, ParameterList, Sequential
from lepton.nn.modules.conv import Conv2d, ConvTranspose2d
from lepton.nn.modules.distance import CosineSimilarity, PairwiseDistance
from lepton.nn.modules.dropout import Dropout, Dropout1d, Dropout2d, Dropout3d
from lepton.nn.modules.flatten import Flatten, Unflatten
from lepton.nn.modules.instancenorm import InstanceNorm1d, InstanceNorm2d, InstanceNorm3d
from lepton.nn.modules.kv_cache import KVCache
from lepton.nn.modules.linear import Identity, Linear
from lepton.nn.modules.loss import (BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, HuberLoss, KLDivLoss, L1Loss,
                                    MSELoss, NLLLoss, SmoothL1Loss, TripletMarginLoss)
from lepton.nn.modules.module import Module
from lepton.nn.modules.normalization import BatchNorm1d, BatchNorm2d, LayerNorm
from lepton.nn.modules.padding import (CircularPad1d, CircularPad2d, CircularPad3d, ConstantPad1d, ConstantPad2d,
                                       ConstantPad3d, ReflectionPad1d, ReflectionPad2d, ReflectionPad3d,
                                       ReplicationPad1d, ReplicationPad2d, ReplicationPad3d, ZeroPad1d, ZeroPad2d,
                                       ZeroPad3d)
from lepton.nn.modules.pixelshuffle import PixelShuffle, PixelUnshuffle
from lepton.nn.modules.pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d
from lepton.nn.modules.rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNBase, RNNCell, RNNCellBase
from lepton.nn.modules.sparse import Embedding
from lepton.nn.modules.transformer import (GPTBlock, Transformer, TransformerDecoder, TransformerDecoderLayer,
                                           TransformerEncoder, TransformerEncoderLayer)
from lepton.nn.modules.upsampling import Upsample, UpsamplingBilinear2d, UpsamplingNearest2d

__all__ = ["Module", "Sequential", "ModuleList", "ModuleDict", "ParameterList", "Identity", "Linear", "Bilinear",
           "Flatten", "Unflatten", "ReLU", "GELU", "SiLU", "Tanh", "Sigmoid", "Softmax", "LogSoftmax", "Dropout",
           "MSELoss", "L1Loss", "BCELoss", "BCEWithLogitsLoss", "NLLLoss", "CrossEntropyLoss"]
__all__ += ["LeakyReLU", "ELU", "CELU", "SELU", "ReLU6", "Mish", "Hardswish", "Hardsigmoid", "Hardtanh", "Softplus",
            "LogSigmoid", "Softsign", "GLU", "PReLU"]
__all__ += ["Dropout1d", "Dropout2d", "Dropout3d"]
__all__ += ["SmoothL1Loss", "HuberLoss", "KLDivLoss", "TripletMarginLoss", "PairwiseDistance", "CosineSimilarity"]
__all__ += ["RNNBase", "RNN", "LSTM", "GRU", "RNNCellBase", "RNNCell", "LSTMCell", "GRUCell"]
__all__ += ["Conv2d", "ConvTranspose2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d"]
__all__ += ["Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d", "PixelShuffle", "PixelUnshuffle"]
__all__ += ["ZeroPad1d", "ZeroPad2d", "ZeroPad3d", "ConstantPad1d", "ConstantPad2d", "ConstantPad3d",
            "ReflectionPad1d", "ReflectionPad2d", "ReflectionPad3d", "ReplicationPad1d", "ReplicationPad2d",
            "ReplicationPad3d", "CircularPad1d", "CircularPad2d", "CircularPad3d"]
__all__ += ["LayerNorm", "BatchNorm1d", "BatchNorm2d", "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d",
            "Embedding"]
__all__ += ["MultiheadAttention"]
__all__ += ["TransformerEncoderLayer", "TransformerEncoder", "TransformerDecoderLayer", "TransformerDecoder",
            "Transformer", "GPTBlock", "KVCache"]
