"""Quantised recurrent layers: RNN, LSTM, GRU and their cells with int8 input and hidden projections.

Each weight matrix (W_ih, W_hh and LSTM's W_hr, per layer and direction) is held as int8 with one
scale per output channel (gate row); the layer's input and each step's hidden state are quantised
per row at run time and multiplied by the int8 GEMM. Biases, gate nonlinearities and the cell
state stay float32. The recurrence itself is nn.RNNBase's / nn.RNNCellBase's: only the cells'
products (lepton.nn.modules.rnn._Products) are swapped, so the two cannot drift apart.
"""

from lepton import nn
from lepton.nn.modules.module import Module
from lepton.nn.modules import rnn as _rnn
from lepton.quant.modules import _Int8Weights, quantize_per_channel

__all__ = ["QuantizedRNN", "QuantizedLSTM", "QuantizedGRU", "QuantizedRNNCell", "QuantizedLSTMCell",
           "QuantizedGRUCell"]


class _Int8Products:
    """The cells' products with int8 weight holders (_Int8Weights) in place of float matrices."""

    @staticmethod
    def linear(x, w, b):
        return w.linear(x, b)

    @staticmethod
    def addmm(acc, h, w):
        return acc + w.linear(h)

    @staticmethod
    def loop_weight(w):
        return w


class _Int8Elman(_Int8Products, _rnn._Elman):
    pass


class _Int8LSTM(_Int8Products, _rnn._LSTM):
    pass


class _Int8GRU(_Int8Products, _rnn._GRU):
    pass


_INT8_CELLS = {_rnn._Elman: _Int8Elman, _rnn._LSTM: _Int8LSTM, _rnn._GRU: _Int8GRU}


def _quantisable_names(module):
    if isinstance(module, nn.RNNBase):
        return [n for names in module._weight_names for n in names if n is not None]
    return ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]


class _QuantizedRecurrent:
    """Built from a float layer or cell of the matching class: its configuration is copied, each
    weight_* becomes an int8 child module of the same name and each bias_* a float32 buffer."""

    def __init__(self, module, weight_only=False):
        Module.__init__(self)
        for key, value in module.__dict__.items():  # configuration (sizes, flags, weight names)
            if key not in self.__dict__:
                object.__setattr__(self, key, value)
        cell = object.__new__(_INT8_CELLS[type(module._cell)])
        cell.__dict__.update(module._cell.__dict__)  # e.g. an Elman cell's nonlinearity
        self._cell = cell
        self.weight_only = bool(weight_only)
        for name in _quantisable_names(module):
            t = getattr(module, name)
            if name.startswith("weight"):
                q, scale = quantize_per_channel(t)
                self.add_module(name, _Int8Weights(q, scale, None, self.weight_only))
            else:
                self.register_buffer(name, None if t is None else t.detach().float().contiguous())

    @classmethod
    def from_float(cls, module, weight_only=False):
        float_type = cls.__bases__[1]  # class QuantizedX(_QuantizedRecurrent, nn.X)
        if type(module) is not float_type:
            raise TypeError(f"{cls.__name__}.from_float: expected an nn.{float_type.__name__}, "
                            f"got {type(module).__name__}")
        return cls(module, weight_only)

    def extra_repr(self):
        return super().extra_repr() + f", {'weight_only' if self.weight_only else 'dynamic'}=int8"


class QuantizedRNN(_QuantizedRecurrent, nn.RNN):
    """nn.RNN with int8 W_ih and W_hh."""


class QuantizedLSTM(_QuantizedRecurrent, nn.LSTM):
    """nn.LSTM with int8 W_ih, W_hh (and W_hr)."""


class QuantizedGRU(_QuantizedRecurrent, nn.GRU):
    """nn.GRU with int8 W_ih and W_hh."""


class QuantizedRNNCell(_QuantizedRecurrent, nn.RNNCell):
    """nn.RNNCell with int8 W_ih and W_hh."""


class QuantizedLSTMCell(_QuantizedRecurrent, nn.LSTMCell):
    """nn.LSTMCell with int8 W_ih and W_hh."""


class QuantizedGRUCell(_QuantizedRecurrent, nn.GRUCell):
    """nn.GRUCell with int8 W_ih and W_hh."""


QUANTIZED = {c.__bases__[1]: c for c in (QuantizedRNN, QuantizedLSTM, QuantizedGRU, QuantizedRNNCell,
                                      QuantizedLSTMCell, QuantizedGRUCell)}
