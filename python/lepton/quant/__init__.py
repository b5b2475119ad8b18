"""lepton.quant: int8 dynamic quantisation for inference (torch.ao.quantization.quantize_dynamic).

quantize_dynamic(model) swaps each nn.Linear (and each groups=1 nn.Conv2d, through im2col, and each
nn.RNN/LSTM/GRU or cell, for its input and hidden projections) for a module holding int8 weights
with one scale per output channel; activations are quantised per row at run time and multiplied
by Lepton's own int8 GEMM (AVX-512 VNNI where the CPU has it). With weight_only=True the weights
are stored in int8 and dequantised for a float GEMM instead.
A quantised model saves and loads with lepton.save / lepton.load through quant.state_dict /
quant.load (the int8 weights as safetensors entries, the quantisation config as JSON).
"""

from lepton.quant.modules import QuantizedConv2d, QuantizedLinear
from lepton.quant.rnn import (QuantizedGRU, QuantizedGRUCell, QuantizedLSTM, QuantizedLSTMCell, QuantizedRNN,
                              QuantizedRNNCell)
from lepton.quant.api import load, quantize_dynamic, quantize_per_channel, state_dict

__all__ = ["quantize_dynamic", "quantize_per_channel", "QuantizedLinear", "QuantizedConv2d", "QuantizedRNN",
           "QuantizedLSTM", "QuantizedGRU", "QuantizedRNNCell", "QuantizedLSTMCell", "QuantizedGRUCell", "state_dict",
           "load"]
