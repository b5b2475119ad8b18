"""Module-level ONNX export: a converter per layer type emits the nodes of its eval-mode forward."""

import math

import numpy as np

try:
    import onnx
    from onnx import helper, numpy_helper
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("lepton.onnx needs the onnx package: pip install onnx") from e

from lepton import _C, nn
from lepton._inference import inference_mode
from lepton.onnx.graph import Graph

__all__ = ["export", "register_converter"]

_CONVERTERS = {}


def register_converter(module_type):
    """Decorator: fn(graph, module, x) -> output name, x the name of the module's input value.
    The most specific registered type of a module's class hierarchy is used."""
    def wrap(fn):
        _CONVERTERS[module_type] = fn
        return fn

    return wrap


def _convert(g, module, x):
    for cls in type(module).__mro__:
        if cls in _CONVERTERS:
            return _CONVERTERS[cls](g, module, x)
    raise NotImplementedError(f"onnx.export: no converter for {type(module).__name__} (supported: "
                              f"{', '.join(sorted(t.__name__ for t in _CONVERTERS))}); register one with "
                              "lepton.onnx.register_converter")


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


# ---- containers and shape layers -------------------------------------------------------------

@register_converter(nn.Sequential)
def _sequential(g, m, x):
    for child in m:
        x = _convert(g, child, x)
    return x


@register_converter(nn.Identity)
@register_converter(nn.Dropout)  # eval mode: identity
def _identity(g, m, x):
    return x


@register_converter(nn.Flatten)
def _flatten(g, m, x):
    if m.end_dim != -1 or m.start_dim < 0:
        raise NotImplementedError("onnx.export: Flatten is supported with start_dim >= 0 and end_dim=-1 only")
    return g.op("Flatten", [x], axis=m.start_dim)


# ---- dense, conv, pooling ---------------------------------------------------------------------

@register_converter(nn.Linear)
def _linear(g, m, x):
    y = g.op("MatMul", [x, g.const(m.weight.detach().float().numpy().T, "weight_t")])
    return g.op("Add", [y, g.const(m.bias, "bias")]) if m.bias is not None else y


_ONNX_PAD_MODES = {"reflect": "reflect", "replicate": "edge"}  # 'wrap' (circular) needs opset 19


@register_converter(nn.Conv2d)
def _conv(g, m, x):
    kh, kw = m.kernel_size
    dh, dw = m.dilation
    left, right, top, bottom = m._input_pads()
    pads = [top, left, bottom, right]
    if m.padding_mode != "zeros":  # an explicit Pad first; ONNX's Conv pads with zeros only
        if m.padding_mode not in _ONNX_PAD_MODES:
            raise ValueError(f"onnx.export: Conv2d(padding_mode={m.padding_mode!r}) has no ONNX opset-17 Pad mode "
                             f"(supported: 'zeros', {', '.join(repr(k) for k in _ONNX_PAD_MODES)})")
        x = g.op("Pad", [x, g.const([0, 0, top, left, 0, 0, bottom, right], "pads", np.int64)],
                 mode=_ONNX_PAD_MODES[m.padding_mode])
        pads = [0, 0, 0, 0]
    inputs = [x, g.const(m.weight, "conv_weight")] + ([g.const(m.bias, "conv_bias")] if m.bias is not None else [])
    return g.op("Conv", inputs, kernel_shape=[kh, kw], strides=list(m.stride), pads=pads, dilations=[dh, dw],
                group=m.groups)


@register_converter(nn.MaxPool2d)
def _maxpool(g, m, x):
    if m.return_indices:
        raise NotImplementedError("onnx.export: MaxPool2d(return_indices=True) is not supported")
    k, s, p, d = _pair(m.kernel_size), _pair(m.stride if m.stride is not None else m.kernel_size), _pair(m.padding), \
        _pair(m.dilation)
    return g.op("MaxPool", [x], kernel_shape=list(k), strides=list(s), pads=[p[0], p[1], p[0], p[1]],
                dilations=list(d), ceil_mode=int(m.ceil_mode))


@register_converter(nn.AvgPool2d)
def _avgpool(g, m, x):
    if getattr(m, "divisor_override", None):
        raise NotImplementedError("onnx.export: AvgPool2d(divisor_override=...) is not supported")
    k, s, p = _pair(m.kernel_size), _pair(m.stride if m.stride is not None else m.kernel_size), _pair(m.padding)
    return g.op("AveragePool", [x], kernel_shape=list(k), strides=list(s), pads=[p[0], p[1], p[0], p[1]],
                ceil_mode=int(m.ceil_mode), count_include_pad=int(m.count_include_pad))


@register_converter(nn.AdaptiveAvgPool2d)
def _adaptive_avgpool(g, m, x):
    if _pair(m.output_size) != (1, 1):
        raise NotImplementedError("onnx.export: AdaptiveAvgPool2d is supported for output_size 1 only")
    return g.op("GlobalAveragePool", [x])


# ---- activations ------------------------------------------------------------------------------

@register_converter(nn.ReLU)
def _relu(g, m, x):
    return g.op("Relu", [x])


@register_converter(nn.Tanh)
def _tanh(g, m, x):
    return g.op("Tanh", [x])


@register_converter(nn.Sigmoid)
def _sigmoid(g, m, x):
    return g.op("Sigmoid", [x])


@register_converter(nn.SiLU)
def _silu(g, m, x):
    return g.op("Mul", [x, g.op("Sigmoid", [x])])


@register_converter(nn.GELU)
def _gelu(g, m, x):
    """x·Φ(x) from Erf (ONNX's Gelu op needs opset 20), or the tanh approximation."""
    half_x = g.op("Mul", [x, g.const(np.float32(0.5))])
    if m.approximate == "tanh":
        cube = g.op("Mul", [g.op("Mul", [x, x]), x])
        inner = g.op("Add", [x, g.op("Mul", [cube, g.const(np.float32(0.044715))])])
        t = g.op("Tanh", [g.op("Mul", [inner, g.const(np.float32(math.sqrt(2 / math.pi)))])])
    else:
        t = g.op("Erf", [g.op("Mul", [x, g.const(np.float32(1 / math.sqrt(2)))])])
    return g.op("Mul", [half_x, g.op("Add", [t, g.const(np.float32(1.0))])])


@register_converter(nn.Softmax)
def _softmax(g, m, x):
    return g.op("Softmax", [x], axis=-1 if m.dim is None else m.dim)


@register_converter(nn.LogSoftmax)
def _log_softmax(g, m, x):
    return g.op("LogSoftmax", [x], axis=-1 if m.dim is None else m.dim)


# ---- normalisation and embeddings -------------------------------------------------------------

@register_converter(nn.LayerNorm)
def _layer_norm(g, m, x):
    shape = m.normalized_shape
    ones = np.ones(shape, np.float32)
    scale = g.const(m.weight if m.weight is not None else ones, "ln_weight", np.float32)
    bias = g.const(m.bias if getattr(m, "bias", None) is not None else 0 * ones, "ln_bias", np.float32)
    return g.op("LayerNormalization", [x, scale, bias], axis=-len(shape), epsilon=float(m.eps))


@register_converter(nn.BatchNorm1d)
@register_converter(nn.BatchNorm2d)
def _batch_norm(g, m, x):
    if m.running_mean is None:
        raise NotImplementedError("onnx.export: BatchNorm without running statistics can't be exported")
    c = m.num_features
    weight = m.weight if m.weight is not None else np.ones(c, np.float32)
    bias = m.bias if m.bias is not None else np.zeros(c, np.float32)
    inputs = [x, g.const(weight, "bn_weight", np.float32), g.const(bias, "bn_bias", np.float32),
              g.const(m.running_mean, "bn_mean", np.float32), g.const(m.running_var, "bn_var", np.float32)]
    return g.op("BatchNormalization", inputs, epsilon=float(m.eps))


@register_converter(nn.Embedding)
def _embedding(g, m, x):
    if m.max_norm is not None:
        raise NotImplementedError("onnx.export: Embedding(max_norm=...) is not supported")
    return g.op("Gather", [g.const(m.weight, "embedding"), x], axis=0)


# ---- GPT ----------------------------------------------------------------------------------------

def _seq_len(g, x):
    """Dimension 1 of x as an int64 tensor of shape [1]."""
    return g.op("Gather", [g.op("Shape", [x]), g.const(np.array([1], np.int64))], axis=0)


def _attention(g, m, x):
    c, h = m.n_embd, m.n_head
    # c_attn as three projections (its weight's row blocks): no Split node to track
    w = m.c_attn.weight.detach().float().numpy()
    b = m.c_attn.bias.detach().float().numpy() if m.c_attn.bias is not None else None
    heads = []
    for i in range(3):
        t = g.op("MatMul", [x, g.const(w[i * c:(i + 1) * c].T, "attn_weight_t")])
        if b is not None:
            t = g.op("Add", [t, g.const(b[i * c:(i + 1) * c], "attn_bias")])
        t = g.op("Reshape", [t, g.const(np.array([0, 0, h, c // h], np.int64))])
        heads.append(g.op("Transpose", [t], perm=[0, 2, 1, 3]))  # [B, H, T, d]
    q, k, v = heads
    scores = g.op("Mul", [g.op("MatMul", [q, g.op("Transpose", [k], perm=[0, 1, 3, 2])]),
                          g.const(np.float32(1 / math.sqrt(c // h)))])
    # causal mask: -inf above the diagonal of a [T, T] block
    t = _seq_len(g, x)
    ones = g.op("ConstantOfShape", [g.op("Concat", [t, t], axis=0)],
                value=numpy_helper.from_array(np.array([1.0], np.float32)))
    keep = g.op("Cast", [g.op("Trilu", [ones], upper=0)], to=9)  # bool
    scores = g.op("Where", [keep, scores, g.const(np.float32(-np.inf))])
    y = g.op("MatMul", [g.op("Softmax", [scores], axis=-1), v])
    y = g.op("Reshape", [g.op("Transpose", [y], perm=[0, 2, 1, 3]), g.const(np.array([0, 0, c], np.int64))])
    return _convert(g, m.c_proj, y)


def _gpt_mlp(g, m, x):
    return _convert(g, m.c_proj, _convert(g, m.gelu, _convert(g, m.c_fc, x)))


def _gpt_block(g, m, x):
    x = g.op("Add", [x, _convert(g, m.attn, _convert(g, m.ln_1, x))])
    return g.op("Add", [x, _convert(g, m.mlp, _convert(g, m.ln_2, x))])


def _char_gpt(g, m, idx):
    # wpe(arange(T)) is the first T rows of its table
    zero = g.const(np.array([0], np.int64))
    pos = g.op("Slice", [g.const(m.wpe.weight, "wpe"), zero, _seq_len(g, idx), zero])
    x = g.op("Add", [_convert(g, m.wte, idx), pos])
    for block in m.h:
        x = _convert(g, block, x)
    return _convert(g, m.lm_head, _convert(g, m.ln_f, x))


def _mnist_lstm(g, m, x):
    x = g.op("Reshape", [x, g.const(np.array([0, m.rows, m.cols], np.int64))])
    _, (h_n, _) = _convert(g, m.lstm, x)
    last = g.op("Gather", [h_n, g.const(np.array([-1], np.int64))], axis=0)  # h_n[-1:]: the top layer's state
    last = g.op("Squeeze", [last, g.const(np.array([0], np.int64))])
    return _convert(g, m.fc, last)


def _register_models():
    """The recipe models' converters, when this build has their layers (imported late: they are optional)."""
    try:
        from lepton.models import CharGPT, MnistLSTM
        from lepton.nn.modules.transformer import CausalSelfAttention, GPTBlock, GPTMLP
    except ImportError:
        return
    for cls, fn in ((CausalSelfAttention, _attention), (GPTMLP, _gpt_mlp), (GPTBlock, _gpt_block),
                    (CharGPT, _char_gpt), (MnistLSTM, _mnist_lstm)):
        register_converter(cls)(fn)


# ---- export -------------------------------------------------------------------------------------

_ONNX_TYPES = {"float32": 1, "uint8": 2, "int8": 3, "int32": 6, "int64": 7, "bool": 9, "float64": 11}


def _value_info(name, t, dynamic_batch, dynamic_dims=(), shape=True):
    """shape=False declares the rank only (each dimension left to the runtime's shape inference)."""
    dims = list(t.shape) if shape else [None] * t.dim()
    if dynamic_batch and dims and shape:
        dims[0] = "batch"
    for d in dynamic_dims:
        dims[d] = f"dim{d}"
    dtype = str(t.dtype).replace("lepton.", "")
    if dtype not in _ONNX_TYPES:
        raise TypeError(f"onnx.export: unsupported tensor dtype {dtype}")
    return helper.make_tensor_value_info(name, _ONNX_TYPES[dtype], dims)


def _flatten(out):
    """The leaves of a (nested) tuple of outputs, in order."""
    if isinstance(out, (tuple, list)):
        return [leaf for o in out for leaf in _flatten(o)]
    return [out]


def export(model, example_input, path, dynamic_batch=True, opset=17, input_names=("input",), output_names=("output",),
           dynamic_axes=None):
    """Writes model (in eval mode) as an ONNX file at path and returns the onnx.ModelProto.

    example_input: a lepton tensor of the input's shape and dtype (the model is run on it once to
    record the output's shape). dynamic_batch makes dimension 0 of input and output symbolic;
    dynamic_axes lists further input dimensions to make symbolic (e.g. [1] for a sequence length).
    A model returning a (nested) tuple, such as nn.LSTM's (output, (h_n, c_n)), gets one graph
    output per tensor, named by output_names or else output_0, output_1, ..., declared by rank
    (their dimensions are left to the runtime, as a dynamic axis moves between them).
    """
    if opset < 17:
        raise ValueError(f"onnx.export: opset must be at least 17 (LayerNormalization), got {opset}")
    if not isinstance(example_input, _C.Tensor):
        raise TypeError(f"onnx.export: example_input must be a lepton tensor, got {type(example_input).__name__}")
    _register_models()
    was_training = model.training
    model.eval()
    try:
        g = Graph()
        g.ranks[input_names[0]] = example_input.dim()
        y = _convert(g, model, input_names[0])
        with inference_mode():
            out = model(example_input)
        outs, ys = _flatten(out), _flatten(y)
        if len(outs) != len(ys) or not all(isinstance(o, _C.Tensor) for o in outs):
            raise NotImplementedError(f"onnx.export: the model returned {type(out).__name__} that the converters "
                                      f"do not reproduce ({len(ys)} graph outputs)")
        single = len(outs) == 1
        names = list(output_names) if len(output_names) == len(outs) else \
            [f"{output_names[0]}_{i}" for i in range(len(outs))]
        for name, value in zip(names, ys):
            g.nodes.append(helper.make_node("Identity", [value], [name]))
        dyn = list(dynamic_axes or [])
        outputs = [_value_info(name, o, dynamic_batch, [d for d in dyn if d < o.dim()] if single else (), single)
                   for name, o in zip(names, outs)]
        proto = g.model([_value_info(input_names[0], example_input, dynamic_batch, dyn)], outputs, opset,
                        type(model).__name__)
    finally:
        model.train(was_training)
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, str(path))
    return proto

