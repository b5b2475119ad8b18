"""Recurrent layers: RNN (tanh/relu), LSTM, GRU and their single-step cells, with torch's parameters.

Composed of differentiable lepton ops; the elementwise part of an LSTM or GRU step is one fused
op (_C.lstm_cell_fused / gru_cell_fused) with one backward node. The input projection
x·W_ihᵀ (+ biases) of every time step is one GEMM per layer and direction before the loop; only
the recurrent product h·W_hhᵀ stays inside it, fused with the add through addmm where the
gate formula allows.
"""

import math
import numbers
import warnings

from lepton import _C
from lepton.nn import functional as F, init
from lepton.nn.modules.module import Module
from lepton.nn.parameter import Parameter


# ---- one time step per mode -----------------------------------------------------------------
# prepare() turns the [T, B, I] input into per-step projected inputs (all steps in one GEMM) and
# the loop-invariant operands; step() advances the state tuple by one time step.

class _Products:
    """The cells' weight products in float: linear(x, w, b) = x·wᵀ + b; recurrent weights are kept as
    loop_weight(w) and applied by addmm(acc, h, that) = acc + h·wᵀ. lepton.quant's int8 cells override them."""

    linear = staticmethod(F.linear)
    addmm = staticmethod(_C.Tensor.addmm)
    _saved_with_module = True  # torch.save(model) stores the cell with its layer (serialization/objects.py)

    @staticmethod
    def loop_weight(w):
        return w.t()


class _Elman(_Products):
    """h' = act(W_ih x + b_ih + W_hh h + b_hh)."""

    gates = 1

    def __init__(self, nonlinearity):
        self.nonlinearity = nonlinearity  # a name, not _C.Tensor.tanh: cells must deep-copy (clone_module)

    def prepare(self, x, w_ih, w_hh, b_ih, b_hh, w_hr):
        bias = None if b_ih is None else b_ih + b_hh  # both biases fold into the precomputed GEMM
        return self.linear(x, w_ih, bias).unbind(0), self.loop_weight(w_hh)

    def step(self, x_t, state, w_hh_t):
        return (getattr(self.addmm(x_t, state[0], w_hh_t), self.nonlinearity)(),)


class _LSTM(_Products):
    """Gates i, f, g, o (torch's order); c' = f·c + i·g, h' = o·tanh(c'), projected by W_hr if proj_size."""

    gates = 4

    def prepare(self, x, w_ih, w_hh, b_ih, b_hh, w_hr):
        bias = None if b_ih is None else b_ih + b_hh
        return self.linear(x, w_ih, bias).unbind(0), (self.loop_weight(w_hh), w_hr)

    def step(self, x_t, state, loop):
        w_hh_t, w_hr = loop
        h, c = state
        h, c = _C.lstm_cell_fused(self.addmm(x_t, h, w_hh_t), c)
        return (h if w_hr is None else self.linear(h, w_hr, None), c)


class _GRU(_Products):
    """Gates r, z, n (torch's order); n = tanh(W_in x + b_in + r·(W_hn h + b_hn)), h' = (1-z)·n + z·h.

    b_hn sits inside the r· product, so b_hh stays in the loop's GEMM instead of being folded.
    """

    gates = 3

    def prepare(self, x, w_ih, w_hh, b_ih, b_hh, w_hr):
        return self.linear(x, w_ih, b_ih).unbind(0), (w_hh, b_hh)

    def step(self, x_t, state, loop):
        w_hh, b_hh = loop
        h = state[0]
        return (_C.gru_cell_fused(x_t, self.linear(h, w_hh, b_hh), h),)


def _run_direction(cell, x, state, weights, reverse):
    """Runs `cell` over x [T, B, I] from `state`; returns (the T outputs [B, H_out] in time order, final state)."""
    steps, loop = cell.prepare(x, *weights)
    order = range(len(steps) - 1, -1, -1) if reverse else range(len(steps))
    outputs = [None] * len(steps)
    for t in order:
        state = cell.step(steps[t], state, loop)
        outputs[t] = state[0]
    return outputs, state


# ---- argument checks shared by layers and cells ---------------------------------------------

def _check_size(name, what, value, minimum=1):
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name}: {what} must be an integer >= {minimum}, got {value!r}")


def _check_input(name, input, input_size, dims, dtype):
    """input must be a floating tensor of `dims` (batched, unbatched) dims ending in input_size."""
    if not isinstance(input, _C.Tensor):
        raise TypeError(f"{name}: input must be a lepton.Tensor, got {type(input).__name__}")
    if input.dim() not in dims:
        raise ValueError(f"{name}: expected input with {dims[0]} (batched) or {dims[1]} (unbatched) dims, "
                         f"got shape {tuple(input.shape)}")
    if input.shape[-1] != input_size:
        raise ValueError(f"{name}: input.size(-1) must be equal to input_size. Expected {input_size}, "
                         f"got input of shape {tuple(input.shape)}")
    if input.dtype != dtype:
        raise TypeError(f"{name}: input dtype {input.dtype} does not match the parameters' dtype {dtype}")


def _check_state(name, what, state, expected, dtype):
    if not isinstance(state, _C.Tensor):
        raise TypeError(f"{name}: {what} must be a lepton.Tensor, got {type(state).__name__}")
    if tuple(state.shape) != tuple(expected):
        raise ValueError(f"{name}: expected {what} of shape {tuple(expected)}, got {tuple(state.shape)}")
    if state.dtype != dtype:
        raise TypeError(f"{name}: {what} dtype {state.dtype} does not match the parameters' dtype {dtype}")


def _reset_uniform(module, hidden_size):
    """torch's recurrent init: every weight and bias ~ U(-1/√H, 1/√H)."""
    bound = 1.0 / math.sqrt(hidden_size)
    for p in module.parameters():
        init.uniform_(p, -bound, bound)


# ---- multi-layer, optionally bidirectional layers ---------------------------------------------

class RNNBase(Module):
    """The shared body of RNN, LSTM and GRU: parameters weight_ih_l{k}[_reverse] and friends, as torch names them."""

    def __init__(self, mode, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, proj_size=0, device=None, dtype=None):
        super().__init__()
        name = type(self).__name__
        _check_size(name, "input_size", input_size, 0)
        _check_size(name, "hidden_size", hidden_size)
        _check_size(name, "num_layers", num_layers)
        _check_size(name, "proj_size", proj_size, 0)
        if proj_size >= hidden_size:
            raise ValueError(f"{name}: proj_size has to be smaller than hidden_size, got {proj_size} >= {hidden_size}")
        if isinstance(dropout, bool) or not isinstance(dropout, numbers.Number) or not 0 <= dropout <= 1:
            raise ValueError(f"{name}: dropout should be a number in range [0, 1] representing the probability "
                             f"of an element being zeroed, got {dropout!r}")
        if dropout > 0 and num_layers == 1:
            warnings.warn(f"dropout option adds dropout after all but last recurrent layer, so non-zero dropout "
                          f"expects num_layers greater than 1, but got dropout={dropout} and num_layers=1",
                          stacklevel=3)
        self.mode = mode
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional, self.proj_size = bidirectional, proj_size
        self._cell = _GRU() if mode == "GRU" else _LSTM() if mode == "LSTM" else _Elman(mode[4:].lower())
        directions = 2 if bidirectional else 1
        real_hidden = proj_size or hidden_size
        gate_size = self._cell.gates * hidden_size
        self._weight_names = []
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else real_hidden * directions
            for direction in range(directions):
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                shapes = {"weight_ih": (gate_size, layer_input), "weight_hh": (gate_size, real_hidden),
                          "bias_ih": (gate_size,) if bias else None, "bias_hh": (gate_size,) if bias else None,
                          "weight_hr": (proj_size, hidden_size) if proj_size else None}
                names = []
                for kind, shape in shapes.items():
                    names.append(None if shape is None else kind + suffix)
                    if shape is not None:
                        self.register_parameter(kind + suffix, Parameter(_C.empty(shape, dtype=dtype, device=device)))
                self._weight_names.append(names)
        self.reset_parameters()

    def reset_parameters(self):
        _reset_uniform(self, self.hidden_size)

    def flatten_parameters(self):
        """A no-op kept for code written for torch, where it compacts cuDNN's weight buffer."""

    @property
    def all_weights(self):
        """The parameters of each layer and direction, in torch's order (w_ih, w_hh[, b_ih, b_hh][, w_hr])."""
        return [[self._parameters[n] for n in names if n is not None] for names in self._weight_names]

    def _weights(self, index):
        """(w_ih, w_hh, b_ih, b_hh, w_hr) of layer*directions + direction, None where absent."""
        return tuple(None if n is None else getattr(self, n) for n in self._weight_names[index])

    def _initial_state(self, hx, batch, batched, dtype, device):
        """hx checked and split into one state tuple per layer and direction (zeros when hx is None)."""
        name = type(self).__name__
        count = self.num_layers * (2 if self.bidirectional else 1)
        h_shape = (count, batch, self.proj_size or self.hidden_size)
        c_shape = (count, batch, self.hidden_size)
        shapes = [h_shape, c_shape] if self.mode == "LSTM" else [h_shape]
        if hx is None:
            states = [_C.zeros(s, dtype=dtype, device=device) for s in shapes]
        else:
            if self.mode == "LSTM":
                if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                    raise TypeError(f"{name}: hx must be a tuple (h_0, c_0), got {type(hx).__name__}")
                states = list(hx)
            else:
                states = [hx]
            for i, (state, shape) in enumerate(zip(states, shapes)):
                what = ("h_0", "c_0")[i]
                expected = shape if batched else (shape[0], shape[2])
                _check_state(name, what, state, expected, dtype)
                if not batched:
                    states[i] = state.unsqueeze(1)
        return list(zip(*(s.unbind(0) for s in states)))

    def forward(self, input, hx=None):
        name = type(self).__name__
        w = self._weights(0)[0]
        _check_input(name, input, self.input_size, (3, 2), w.dtype)
        batched = input.dim() == 3
        if input.shape[1 if batched and self.batch_first else 0] == 0:
            raise ValueError(f"{name}: expected sequence length to be larger than 0, got input of shape "
                             f"{tuple(input.shape)} (batch_first={self.batch_first})")
        x = input if batched else input.unsqueeze(1)
        if self.batch_first and batched:
            x = x.transpose(0, 1)  # time-major inside: the loop takes x[t] as one contiguous [B, G] block
        states = self._initial_state(hx, x.shape[1], batched, w.dtype, w.device)
        directions = 2 if self.bidirectional else 1
        finals = []
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(directions):
                index = layer * directions + direction
                out, state = _run_direction(self._cell, x, states[index], self._weights(index), direction == 1)
                outputs.append(_C.stack(out, 0))
                finals.append(state)
            x = _C.cat(outputs, 2) if directions == 2 else outputs[0]
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, True)
        if self.batch_first and batched:
            x = x.transpose(0, 1)
        final = tuple(_C.stack([s[i] for s in finals], 0) for i in range(len(finals[0])))
        if not batched:
            x = x.squeeze(1)
            final = tuple(s.squeeze(1) for s in final)
        return x, (final if self.mode == "LSTM" else final[0])

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.mode.startswith("RNN_") and self.mode != "RNN_TANH":
            s += ", nonlinearity='relu'"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s


class RNN(RNNBase):
    """Elman RNN: h_t = tanh or relu(x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh); returns (output, h_n)."""

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: unknown nonlinearity {nonlinearity!r}; select from 'tanh' or 'relu'")
        super().__init__(f"RNN_{nonlinearity.upper()}", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, 0, device, dtype)
        self.nonlinearity = nonlinearity


class LSTM(RNNBase):
    """Long short-term memory (gates i, f, g, o); returns (output, (h_n, c_n)); proj_size adds W_hr."""

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, proj_size=0, device=None, dtype=None):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         proj_size, device, dtype)


class GRU(RNNBase):
    """Gated recurrent unit (gates r, z, n); returns (output, h_n)."""

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, device=None, dtype=None):
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         0, device, dtype)


# ---- single-step cells ----------------------------------------------------------------------

class RNNCellBase(Module):
    """One time step of a recurrent layer on [B, I] (or unbatched [I]) input; parameters weight_ih, weight_hh,
    bias_ih, bias_hh."""

    def __init__(self, cell, input_size, hidden_size, bias, device, dtype):
        super().__init__()
        name = type(self).__name__
        _check_size(name, "input_size", input_size, 0)
        _check_size(name, "hidden_size", hidden_size)
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        self._cell = cell
        gate_size = cell.gates * hidden_size
        self.weight_ih = Parameter(_C.empty((gate_size, input_size), dtype=dtype, device=device))
        self.weight_hh = Parameter(_C.empty((gate_size, hidden_size), dtype=dtype, device=device))
        for b in ("bias_ih", "bias_hh"):
            self.register_parameter(b, Parameter(_C.empty((gate_size,), dtype=dtype, device=device)) if bias else None)
        self.reset_parameters()

    def reset_parameters(self):
        _reset_uniform(self, self.hidden_size)

    def _step(self, input, hx, n_states):
        """The new state tuple, from input [B, I] | [I] and hx (a tensor, a tuple of n_states tensors, or None)."""
        name = type(self).__name__
        _check_input(name, input, self.input_size, (2, 1), self.weight_ih.dtype)
        batched = input.dim() == 2
        expected = (input.shape[0], self.hidden_size) if batched else (self.hidden_size,)
        if hx is None:
            states = [_C.zeros(expected, dtype=input.dtype, device=input.device)] * n_states
        else:
            states = list(hx) if n_states > 1 else [hx]
            for i, state in enumerate(states):
                _check_state(name, ("hx", "cx")[i], state, expected, input.dtype)
        x = input.unsqueeze(0) if batched else input.view([1, 1, -1])  # one time step of a batch
        if not batched:
            states = [s.unsqueeze(0) for s in states]
        weights = (self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh, None)
        _, state = _run_direction(self._cell, x, tuple(states), weights, False)
        return state if batched else tuple(s.squeeze(0) for s in state)

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            s += ", bias=False"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity={self.nonlinearity!r}"
        return s


class RNNCell(RNNCellBase):
    """h' = tanh or relu(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh)."""

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNNCell: unknown nonlinearity {nonlinearity!r}; select from 'tanh' or 'relu'")
        super().__init__(_Elman(nonlinearity), input_size, hidden_size, bias, device, dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input, hx=None):
        return self._step(input, hx, 1)[0]


class LSTMCell(RNNCellBase):
    """One LSTM step; hx is (h, c) or None; returns (h', c')."""

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__(_LSTM(), input_size, hidden_size, bias, device, dtype)

    def forward(self, input, hx=None):
        if hx is not None and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
            raise TypeError(f"LSTMCell: hx must be a tuple (h, c), got {type(hx).__name__}")
        return self._step(input, hx, 2)


class GRUCell(RNNCellBase):
    """One GRU step; returns h'."""

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__(_GRU(), input_size, hidden_size, bias, device, dtype)

    def forward(self, input, hx=None):
        return self._step(input, hx, 1)[0]
