"""ONNX converters for nn.RNN, nn.LSTM and nn.GRU: one ONNX RNN/LSTM/GRU node per layer.

ONNX orders the gates differently from torch (LSTM: i, o, f, c against torch's i, f, g, o; GRU:
z, r, h against r, z, n), so the weight row blocks are permuted here. torch's GRU applies the
reset gate after the hidden product, which is ONNX's linear_before_reset=1. The nodes run
time-major ([T, B, I], layout 0, which every runtime supports); a batch_first layer gets a
Transpose on either side. The input must be batched (3-D); the initial state is zero (the
exported model takes one input); outputs are (output, h_n) or (output, (h_n, c_n)) as in Lepton.
"""

import numpy as np

from lepton import _C, nn
from lepton.onnx.export import register_converter

# torch's gate blocks in ONNX's order
_GATE_ORDER = {"LSTM": [0, 3, 1, 2], "GRU": [1, 0, 2]}


def _blocks(t, order):
    """t's row blocks (one per gate) reordered, as float32 NumPy."""
    a = t.detach().float().numpy()
    if order is None:
        return a
    return np.concatenate([a[i * (len(a) // len(order)):(i + 1) * (len(a) // len(order))] for i in order])


def _layer_node(g, m, x, layer, directions):
    """One ONNX recurrent node over x [T, B, I]; returns (y [T, B, D·H], h [D, B, H], c or None)."""
    op = "LSTM" if m.mode == "LSTM" else "GRU" if m.mode == "GRU" else "RNN"
    order = _GATE_ORDER.get(m.mode)
    ws, rs, bs = [], [], []
    for d in range(directions):
        w_ih, w_hh, b_ih, b_hh, _ = m._weights(layer * directions + d)
        if not isinstance(w_ih, _C.Tensor):
            raise NotImplementedError(f"onnx.export: {type(m).__name__} holds quantised weights; export the float "
                                      "model instead")
        ws.append(_blocks(w_ih, order))
        rs.append(_blocks(w_hh, order))
        gates = ws[-1].shape[0]
        bs.append(np.concatenate([_blocks(b_ih, order), _blocks(b_hh, order)]) if b_ih is not None
                  else np.zeros(2 * gates, np.float32))
    attrs = {"hidden_size": m.hidden_size, "direction": "bidirectional" if directions == 2 else "forward"}
    if op == "GRU":
        attrs["linear_before_reset"] = 1
    if op == "RNN":
        attrs["activations"] = [m.nonlinearity.capitalize()] * directions
    inputs = [x, g.const(np.stack(ws), "rnn_w"), g.const(np.stack(rs), "rnn_r"), g.const(np.stack(bs), "rnn_b")]
    outs = g.op(op, inputs, outputs=3 if op == "LSTM" else 2, **attrs)
    # Y [T, D, B, H] -> [T, B, D·H]: the directions side by side, as Lepton concatenates them
    y = g.op("Reshape", [g.op("Transpose", [outs[0]], perm=[0, 2, 1, 3]), g.const(np.array([0, 0, -1], np.int64))])
    return y, outs[1], outs[2] if op == "LSTM" else None


@register_converter(nn.RNNBase)
def _rnn(g, m, x):
    if m.proj_size:
        raise NotImplementedError("onnx.export: LSTM with proj_size has no ONNX equivalent")
    if g.ranks.get(x, 3) != 3:
        raise ValueError(f"onnx.export: {type(m).__name__} is exported for batched input (3-D, "
                         f"{'[B, T, I]' if m.batch_first else '[T, B, I]'}), got a {g.ranks[x]}-D example input")
    if m.batch_first:
        x = g.op("Transpose", [x], perm=[1, 0, 2])
    directions = 2 if m.bidirectional else 1
    hs, cs = [], []
    for layer in range(m.num_layers):
        x, h, c = _layer_node(g, m, x, layer, directions)
        hs.append(h)
        cs.append(c)
    if m.batch_first:
        x = g.op("Transpose", [x], perm=[1, 0, 2])
    h_n = g.op("Concat", hs, axis=0) if len(hs) > 1 else hs[0]
    if m.mode != "LSTM":
        return x, h_n
    return x, (h_n, g.op("Concat", cs, axis=0) if len(cs) > 1 else cs[0])
