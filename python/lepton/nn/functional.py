"""lepton.nn.functional: stateless layers and losses (torch.nn.functional) composed of lepton ops.

Every function here is differentiable through the ops it is made of; softmax, log_softmax and the
unweighted class-index cross_entropy call fused kernels whose backward lives in C++.
"""

import math
import warnings

from lepton import _C
from lepton._C import Tensor
from lepton.autograd import no_grad

__all__ = ["linear", "relu", "gelu", "silu", "tanh", "sigmoid", "logsigmoid", "softmax", "log_softmax",
           "dropout", "mse_loss", "l1_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits",
           "nll_loss", "cross_entropy"]


# ---- layers --------------------------------------------------------------------------------

def linear(input, weight, bias=None):
    """input · weightᵀ + bias, with weight [out_features, in_features]; one fused kernel."""
    return _C.linear(input, weight, bias)


def relu(input, inplace=False):
    return input.relu_() if inplace else input.relu()


def gelu(input, approximate="none"):
    """GELU: x·Φ(x) exactly ('none') or with the tanh approximation ('tanh')."""
    if approximate == "none":
        return input.gelu()
    if approximate == "tanh":
        return input.gelu_tanh()
    raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")


def silu(input, inplace=False):
    return input.silu_() if inplace else input.silu()


def tanh(input):
    return input.tanh()


def sigmoid(input):
    return input.sigmoid()


def logsigmoid(input):
    """log σ(x) = -(max(-x, 0) + log1p(exp(-|x|))), finite for any x.

    |x| is where(x >= 0, x, -x) rather than abs() so that at x = 0 the gradient is the true
    σ(-x) = 0.5 and not the 0 that abs's and relu's subgradients would add up to (zero-initialised
    logits would otherwise get no gradient).
    """
    abs_x = _C.where(input >= 0, input, -input)
    return -((abs_x - input) * 0.5 + (-abs_x).exp().log1p())


def _softmax_dim(name, input, dim):
    if dim is not None:
        return dim
    dim = 0 if input.dim() in (0, 1, 3) else 1
    warnings.warn(f"Implicit dimension choice for {name} has been deprecated. "
                  f"Change the call to include dim={dim} as an argument.", stacklevel=3)
    return dim


def log_softmax(input, dim=None, dtype=None):
    """x - logsumexp(x) along dim, in one fused kernel (shifted by the row max, so large logits stay exact)."""
    if dtype is not None:
        input = input.to(dtype)
    input, = _autocast("log_softmax", input)
    return _in_float32_if_half(_C.log_softmax, input, _softmax_dim("log_softmax", input, dim))


def softmax(input, dim=None, dtype=None):
    """exp(x - max) / Σ exp(x - max) along dim, in one fused kernel: never overflows, rows sum to 1."""
    if dtype is not None:
        input = input.to(dtype)
    input, = _autocast("softmax", input)
    return _in_float32_if_half(_C.softmax, input, _softmax_dim("softmax", input, dim))


def _autocast(op, *tensors):
    """The tensors cast as lepton.autocast's policy for op says (e.g. float32 for losses), for the ops
    whose 16-bit handling is decided here rather than in C++; unchanged when autocast is off."""
    return _C._autocast_cast(op, tensors)


def _is_16bit(t):
    return t.dtype in (_C.dtype.float16, _C.dtype.bfloat16)


def _in_float32_if_half(op, input, dim):
    """The fused kernels are float32/float64: 16-bit inputs compute in float32 and round once."""
    if input.dtype in (_C.dtype.float16, _C.dtype.bfloat16):
        return op(input.float(), dim).to(input.dtype)
    return op(input, dim)


def dropout(input, p=0.5, training=True, inplace=False):
    """Zeroes each element with probability p and scales the rest by 1/(1-p); identity unless training.

    One fused kernel: the mask comes from the global Philox generator (lepton.manual_seed makes it
    reproducible) and is made again for the backward instead of being stored.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0:
        return input
    if _is_16bit(input):  # the kernel is float32/float64
        out = _C.dropout(input.float(), p).to(input.dtype)
        return input.copy_(out) if inplace else out
    return _C.dropout(input, p, inplace)


# ---- losses --------------------------------------------------------------------------------

def _reduce(loss, reduction, weights=None):
    """'none', 'sum', or 'mean' (over elements, or weighted: sum(loss) / sum(weights), as torch does)."""
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.mean() if weights is None else loss.sum() / weights.sum()
    raise ValueError(f"{reduction} is not a valid value for reduction")


def _check_float(name, **tensors):
    for arg, t in tensors.items():
        if t is None:
            continue
        if not isinstance(t, Tensor):
            raise TypeError(f"{name}: {arg} must be a lepton.Tensor, got {type(t).__name__}")
        if not t.dtype.is_floating_point:
            raise TypeError(f"{name}: {arg} must be a floating-point tensor, got {t.dtype}")


def _check_same_shape(name, input, target):
    if tuple(target.shape) != tuple(input.shape):
        raise ValueError(f"{name}: target size {tuple(target.shape)} must be the same as input size "
                         f"{tuple(input.shape)}")


def _pointwise_loss(name, input, target):
    _check_float(name, input=input, target=target)
    if tuple(target.shape) != tuple(input.shape):
        warnings.warn(f"{name}: using a target size ({tuple(target.shape)}) that is different to the input size "
                      f"({tuple(input.shape)}). This will likely lead to incorrect results due to broadcasting. "
                      "Please ensure they have the same size.", stacklevel=3)
    return input - target


def _fusable(input, target, *constants, target_grad=True):
    """Whether the fused pointwise-loss kernel applies: float32/float64 input and target of one shape
    and dtype (target requiring grad only where the kernel differentiates it), constant weights."""
    return (isinstance(input, Tensor) and isinstance(target, Tensor)
            and input.dtype in (_C.dtype.float32, _C.dtype.float64) and target.dtype == input.dtype and tuple(target.shape) == tuple(input.shape)
            and target.device == input.device and (target_grad or not target.requires_grad)
            and all(c is None or (c.dtype == input.dtype and not c.requires_grad) for c in constants))


def mse_loss(input, target, reduction="mean"):
    _check_float("mse_loss", input=input, target=target)
    input, target = _autocast("mse_loss", input, target)
    if _fusable(input, target):
        return _C.pointwise_loss("mse", input, target, reduction=reduction)
    return _reduce(_pointwise_loss("mse_loss", input, target).square(), reduction)


def l1_loss(input, target, reduction="mean"):
    _check_float("l1_loss", input=input, target=target)
    input, target = _autocast("l1_loss", input, target)
    if _fusable(input, target):
        return _C.pointwise_loss("l1", input, target, reduction=reduction)
    return _reduce(_pointwise_loss("l1_loss", input, target).abs(), reduction)


def binary_cross_entropy(input, target, weight=None, reduction="mean"):
    """-w·(y·log x + (1-y)·log(1-x)) for probabilities x; each log is clamped at -100 as in torch."""
    _check_float("binary_cross_entropy", input=input, target=target, weight=weight)
    _check_same_shape("binary_cross_entropy", input, target)
    input, target, weight = _autocast("binary_cross_entropy", input, target, weight)
    if _fusable(input, target, weight, target_grad=False):
        return _C.pointwise_loss("bce", input, target, weight, reduction=reduction)
    with no_grad():
        if (input >= 0).logical_and(input <= 1).logical_not().any().item():
            raise RuntimeError("binary_cross_entropy: all elements of input should be between 0 and 1 "
                               "(use binary_cross_entropy_with_logits for logits)")
    loss = -(target * input.log().clamp(min=-100) + (1 - target) * (-input).log1p().clamp(min=-100))
    return _reduce(loss if weight is None else loss * weight, reduction)


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean", pos_weight=None):
    """BCE of sigmoid(input) computed from the logits: (1-y)·x - (1 + (pw-1)·y)·log σ(x), stable for any x."""
    _check_float("binary_cross_entropy_with_logits", input=input, target=target, weight=weight,
                 pos_weight=pos_weight)
    _check_same_shape("binary_cross_entropy_with_logits", input, target)
    input, target, weight, pos_weight = _autocast("binary_cross_entropy_with_logits", input, target, weight, pos_weight)
    if _fusable(input, target, weight, pos_weight, target_grad=False):
        return _C.pointwise_loss("bce_with_logits", input, target, weight, pos_weight, reduction)
    log_weight = 1 if pos_weight is None else 1 + (pos_weight - 1) * target
    loss = (1 - target) * input - log_weight * logsigmoid(input)
    return _reduce(loss if weight is None else loss * weight, reduction)


def _class_dim_view(t, input, class_dim):
    """A [C] tensor shaped to broadcast along input's class dimension."""
    return t.view([t.numel()] + [1] * (input.dim() - class_dim - 1))


def _class_dim(name, input, weight):
    """Where the classes are: dim 1 of [N, C, ...], dim 0 of an unbatched [C]; checks the class weights too."""
    if input.dim() == 0:
        raise ValueError(f"{name}: input must have a class dimension, got a 0-d tensor")
    class_dim = 0 if input.dim() == 1 else 1
    n_classes = input.shape[class_dim]
    if weight is not None and (weight.dim() != 1 or weight.numel() != n_classes):
        raise ValueError(f"{name}: weight must be a 1-D tensor of {n_classes} class weights, "
                         f"got shape {tuple(weight.shape)}")
    return class_dim


def _check_class_targets(name, input, target, class_dim):
    """target must be int64 class indices shaped like input without its class dimension."""
    if not isinstance(target, Tensor) or target.dtype != _C.dtype.int64:
        got = target.dtype if isinstance(target, Tensor) else type(target).__name__
        raise TypeError(f"{name}: target must be an int64 tensor of class indices, got {got}")
    expected = tuple(input.shape[:class_dim] + input.shape[class_dim + 1:])
    if tuple(target.shape) != expected:
        if class_dim == 1 and target.dim() >= 1 and target.shape[0] != input.shape[0]:
            raise ValueError(f"Expected input batch_size ({input.shape[0]}) to match target batch_size "
                             f"({target.shape[0]}).")
        raise ValueError(f"{name}: expected target of shape {expected} for input of shape {tuple(input.shape)}, "
                         f"got {tuple(target.shape)}")


def _fused_cross_entropy(input, target, class_dim, ignore_index, reduction, label_smoothing):
    """Unweighted class-index cross-entropy through the fused per-row kernel.

    The class dim is moved last and the other dims flattened into rows; 'mean' divides by the
    number of non-ignored rows, as torch does.
    """
    _check_class_targets("cross_entropy", input, target, class_dim)
    n_classes = input.shape[class_dim]
    order = [d for d in range(input.dim()) if d != class_dim] + [class_dim]
    rows = input.permute(order).reshape([-1, n_classes])
    loss = _C.cross_entropy_rows(rows, target.reshape([-1]), ignore_index, label_smoothing)
    if reduction == "mean":
        return loss.sum() / (target != ignore_index).to(loss.dtype).sum()
    return _reduce(loss.view(list(target.shape)), reduction)


def _pick_targets(name, input, target, weight, ignore_index):
    """For class-index targets: (-input[target]·w[target], w[target], valid), zero where target == ignore_index.

    The class is selected with a comparison mask and where(), which is differentiable (integer
    indexing is not) and leaves no NaN from -inf entries in the classes not picked.
    """
    class_dim = _class_dim(name, input, weight)
    _check_class_targets(name, input, target, class_dim)
    n_classes = input.shape[class_dim]
    valid = target != ignore_index
    with no_grad():
        bad = valid.logical_and((target < 0).logical_or(target >= n_classes))
        if bad.any().item():
            value = int(target.cpu().numpy()[bad.cpu().numpy()][0])
            raise IndexError(f"{name}: target {value} is out of bounds for {n_classes} classes")
    classes = _class_dim_view(_C.arange(n_classes, device=input.device), input, class_dim)
    hit = (target.unsqueeze(class_dim) == classes).logical_and(valid.unsqueeze(class_dim))
    w = valid.to(input.dtype) if weight is None else \
        _C.where(hit, _class_dim_view(weight, input, class_dim), 0.0).sum(class_dim)
    picked = _C.where(hit, input, 0.0).sum(class_dim)
    return -picked * w, w, valid


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):
    """Negative log-likelihood of class-index targets given log-probabilities input [N, C, ...] or [C].

    'mean' divides by the summed weights of the non-ignored targets, as torch does.
    """
    _check_float("nll_loss", input=input, weight=weight)
    input, weight = _autocast("nll_loss", input, weight)
    loss, w, _ = _pick_targets("nll_loss", input, target, weight, ignore_index)
    return _reduce(loss, reduction, w)


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """Cross-entropy of logits [N, C, ...] or [C] against class indices (int64) or class probabilities.

    With label smoothing ε the loss is (1-ε)·nll + ε/C·Σ_c -w_c·log p_c, as in torch.
    """
    _check_float("cross_entropy", input=input, weight=weight)
    input, weight = _autocast("cross_entropy", input, weight)
    if isinstance(target, Tensor) and target.dtype.is_floating_point:  # class probabilities
        target, = _autocast("cross_entropy", target)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be between 0.0 and 1.0, got {label_smoothing}")
    class_dim = _class_dim("cross_entropy", input, weight)
    class_indices = not (isinstance(target, Tensor) and target.dtype.is_floating_point)
    if class_indices and weight is None and reduction in ("none", "sum", "mean"):
        return _fused_cross_entropy(input, target, class_dim, ignore_index, reduction, label_smoothing)
    logp = log_softmax(input, class_dim)
    n_classes = input.shape[class_dim]

    def weighted(t):
        return t if weight is None else t * _class_dim_view(weight, input, class_dim)

    if not class_indices:  # class probabilities
        _check_same_shape("cross_entropy", input, target)
        if ignore_index != -100:
            raise ValueError("cross_entropy: ignore_index is not supported for class-probability targets")
        if label_smoothing:
            target = target * (1 - label_smoothing) + label_smoothing / n_classes
        return _reduce(-(weighted(logp) * target).sum(class_dim), reduction)
    loss, w, valid = _pick_targets("cross_entropy", logp, target, weight, ignore_index)
    nll = _reduce(loss, reduction, w)
    if not label_smoothing:
        return nll
    smooth = -weighted(logp).sum(class_dim) * valid.to(logp.dtype)
    return (1 - label_smoothing) * nll + (label_smoothing / n_classes) * _reduce(smooth, reduction, w)


# ---- padding --------------------------------------------------------------------------------

__all__ += ["pad"]

_PAD_MODES = ("constant", "reflect", "replicate", "circular")


def _pad_dim(x, dim, left, right, mode, value):
    """x padded along dim, built from slices and cat so that autograd sees ordinary views."""
    n = x.shape[dim]
    if mode == "constant":
        if left < 0 or right < 0:  # negative padding crops, as in torch
            x = x.narrow(dim, max(-left, 0), n - max(-left, 0) - max(-right, 0))
            left, right = max(left, 0), max(right, 0)
        shape = list(x.shape)
        parts = []
        for width in (left, right):
            shape[dim] = width
            parts.append(_C.full(shape, value, dtype=x.dtype, device=x.device) if width else None)
        pieces = [parts[0], x, parts[1]]
    elif mode == "replicate":
        def edge(at, width):  # the edge slice repeated width times (a broadcast view)
            shape = list(x.shape)
            shape[dim] = width
            return x.narrow(dim, at, 1).expand(*shape)

        pieces = [edge(0, left) if left else None, x, edge(n - 1, right) if right else None]
    elif mode == "circular":
        pieces = [x.narrow(dim, n - left, left) if left else None, x, x.narrow(dim, 0, right) if right else None]
    else:  # reflect: mirror without repeating the edge, one column at a time (pads are small)
        pieces = ([x.narrow(dim, i, 1) for i in range(left, 0, -1)] + [x]
                  + [x.narrow(dim, n - 2 - i, 1) for i in range(right)])
    return _C.cat([p for p in pieces if p is not None], dim)


def pad(input, pad, mode="constant", value=None):
    """torch.nn.functional.pad: pad = (left, right) for the last dim, then (top, bottom) for the one
    before, and so on. mode 'constant' (value, default 0; negative pads crop), 'reflect' (mirror
    without the edge; pads < the dim's size), 'replicate' (repeat the edge) or 'circular' (wrap;
    pads <= the size); the last three pad at most the last 3 dims of a batched or unbatched input."""
    if not isinstance(input, Tensor):
        raise TypeError(f"pad: input must be a lepton.Tensor, got {type(input).__name__}")
    if mode not in _PAD_MODES:
        raise ValueError(f"pad: mode must be one of {list(_PAD_MODES)}, got {mode!r}")
    pad = tuple(pad)
    if len(pad) % 2 or len(pad) // 2 > input.dim() or not all(isinstance(v, int) for v in pad):
        raise ValueError(f"pad: expected an even number of ints, at most 2 per dimension of the "
                         f"{input.dim()}-d input, got {pad}")
    if mode != "constant":
        if value not in (None, 0):
            raise ValueError(f"pad: value only applies to mode='constant', got mode={mode!r} and value={value}")
        if len(pad) > 6 or input.dim() < len(pad) // 2 + 1:
            raise ValueError(f"pad: mode {mode!r} pads the last 1-3 dims of an input with at least one more dim, "
                             f"got pad {pad} for input of shape {tuple(input.shape)}")
    out = input
    for i in range(len(pad) // 2):
        dim, (left, right) = input.dim() - 1 - i, pad[2 * i:2 * i + 2]
        n = out.shape[dim]
        limit = {"reflect": n - 1, "circular": n}.get(mode)
        if mode != "constant" and (min(left, right) < 0 or (limit is not None and max(left, right) > limit)):
            raise ValueError(f"pad: {mode} padding of ({left}, {right}) does not fit dimension {dim} of size {n}"
                             + (f" (at most {limit} each side)" if limit is not None else ""))
        if mode == "constant" and n + min(left, 0) + min(right, 0) < 0:
            raise ValueError(f"pad: negative padding ({left}, {right}) crops more than dimension {dim} of size {n}")
        if left or right:
            out = _pad_dim(out, dim, left, right, mode, 0.0 if value is None else value)
    return out


# ---- convolution and pooling (NCHW) ---------------------------------------------------------

__all__ += ["conv2d", "max_pool2d", "max_pool2d_with_indices", "avg_pool2d", "adaptive_avg_pool2d"]


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-d convolution of [N, C_in, H, W] (or [C_in, H, W]) with weight [C_out, C_in / groups, kH, kW].

    stride, padding and dilation are ints or pairs; padding may also be 'valid' or 'same'
    (stride 1). One C++ op (im2col tiles + GEMM) with its own backward.
    """
    return _C.conv2d(input, weight, bias, stride, padding, dilation, groups)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """Max over each window (stride defaults to kernel_size); with return_indices, also (values, indices)."""
    return _C.max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def max_pool2d_with_indices(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """(values, int64 indices h·W + w of each maximum within its input plane)."""
    return max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices=True)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """Mean over each window (stride defaults to kernel_size)."""
    return _C.avg_pool2d(input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)


def adaptive_avg_pool2d(input, output_size):
    """Mean pooling to output_size (an int or a pair; None keeps that dimension's input size)."""
    return _C.adaptive_avg_pool2d(input, output_size)


# ---- normalisation and embedding -----------------------------------------------------------

__all__ += ["layer_norm", "batch_norm", "embedding"]


def _float32(t):
    return None if t is None else t.float()


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """(x - mean)/√(var + eps)·weight + bias over the trailing normalized_shape dims (biased variance),
    in one fused kernel; 16-bit inputs compute in float32."""
    input, weight, bias = _autocast("layer_norm", input, weight, bias)
    if _is_16bit(input):
        return _C.layer_norm(input.float(), normalized_shape, _float32(weight), _float32(bias), eps).to(input.dtype)
    return _C.layer_norm(input, normalized_shape, weight, bias, eps)


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    """Per-channel normalisation of [N, C, ...] input, in one fused kernel each way.

    training: with the batch's mean and biased variance, moving running_mean/running_var (when given)
    towards the batch mean and unbiased variance by `momentum`; otherwise with the running statistics.
    """
    if _is_16bit(input):  # computes in float32; 16-bit running statistics are updated through float32 copies
        mean32, var32 = _float32(running_mean), _float32(running_var)
        out = batch_norm(input.float(), mean32, var32, _float32(weight), _float32(bias), training, momentum, eps)
        if training and running_mean is not None and mean32 is not running_mean:
            with no_grad():
                running_mean.copy_(mean32)
                running_var.copy_(var32)
        return out.to(input.dtype)
    return _C.batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps)


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0, scale_grad_by_freq=False,
              sparse=False):
    """Rows of weight [num_embeddings, dim] at the integer indices in input -> input.shape + (dim,).

    The gradient is a dense scatter-add into the weight's shape; padding_idx's row gets none. With
    max_norm, the rows looked up are first renormalised in place to norm <= max_norm, as in torch.
    """
    if sparse:
        raise NotImplementedError("embedding: sparse gradients are not supported; use sparse=False")
    if not isinstance(input, Tensor):
        raise TypeError(f"embedding: input must be a lepton.Tensor of indices, got {type(input).__name__}")
    if max_norm is not None:
        with no_grad():
            _C.embedding_renorm_(weight, input, max_norm, norm_type)
    if _is_16bit(weight):
        return _C.embedding(weight.float(), input, padding_idx, scale_grad_by_freq).to(weight.dtype)
    return _C.embedding(weight, input, padding_idx, scale_grad_by_freq)


# ---- attention -----------------------------------------------------------------------------

__all__ += ["scaled_dot_product_attention"]


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """softmax(q·kᵀ·scale + mask)·v for q [..., L, E], k [..., S, E], v [..., S, Ev] (leading dims
    broadcast; E, Ev <= 256), in fused flash-style kernels that never hold the L×S weights.

    attn_mask: bool (True = may attend) or of query's dtype (added to the scores), broadcastable to
    [..., L, S]. is_causal (without attn_mask): query i attends to keys j <= i, aligned at the top
    left when L != S, as in torch. A query that may attend to no key gets 0 and passes no gradient
    (torch's behaviour). scale defaults to 1/√E. dropout_p > 0 drops weights with a counter-based
    Philox mask (reproducible under lepton.manual_seed) that the backward regenerates rather than
    stores. 16-bit inputs run the tensor-core kernels on CUDA (float32 accumulation) and compute in
    float32 elsewhere.
    """
    return _C.scaled_dot_product_attention(query, key, value, attn_mask, dropout_p, is_causal, scale)


# ---- more activations, composed of differentiable ops -----------------------------------------
#
# inplace=True writes the result into input with in-place ops that autograd records (mul_, clamp_,
# relu_, add_), so the returned tensor is input itself, as in torch.

__all__ += ["leaky_relu", "elu", "selu", "celu", "softplus", "hardtanh", "relu6", "mish", "hardswish",
            "hardsigmoid", "softsign", "glu", "prelu"]

_SELU_ALPHA, _SELU_SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946


def _filled_like(t, value):
    return _C.full(tuple(t.shape), value, dtype=t.dtype, device=t.device)


def leaky_relu(input, negative_slope=0.01, inplace=False):
    """x for x > 0, negative_slope·x otherwise (the gradient at 0 is negative_slope, as in torch)."""
    _check_float("leaky_relu", input=input)
    factor = _C.where(input > 0, 1.0, _filled_like(input, negative_slope))
    return input.mul_(factor) if inplace else input * factor


def _elu(name, input, alpha, scale, input_scale, inplace):
    """scale·x for x > 0, scale·alpha·(exp(input_scale·x) - 1) otherwise: torch's elu family.

    Built as scale·relu(x) + tail, where tail is computed from -min(x, 0) (clamp passes the gradient
    at 0, so the slope at 0 is scale·alpha·input_scale as in torch) and is -0.0 for x > 0."""
    _check_float(name, input=input)
    tail = ((-input).clamp(min=0.0) * -input_scale).expm1() * (alpha * scale)
    if inplace:
        input.relu_()
        if scale != 1.0:
            input.mul_(scale)
        return input.add_(tail)
    positive = input.relu()
    return (positive if scale == 1.0 else positive * scale) + tail


def elu(input, alpha=1.0, inplace=False):
    return _elu("elu", input, alpha, 1.0, 1.0, inplace)


def selu(input, inplace=False):
    return _elu("selu", input, _SELU_ALPHA, _SELU_SCALE, 1.0, inplace)


def celu(input, alpha=1.0, inplace=False):
    if alpha == 0:
        raise ValueError("celu: alpha must not be 0 (the negative part is alpha·(exp(x/alpha) - 1))")
    return _elu("celu", input, alpha, 1.0, 1.0 / alpha, inplace)


def _softplus_unscaled(z):
    """log(1 + exp(z)) = -log σ(-z), finite for any z."""
    return -logsigmoid(-z)


def softplus(input, beta=1.0, threshold=20.0):
    """log(1 + exp(beta·x)) / beta, and x itself where beta·x > threshold (for stability), as in torch."""
    _check_float("softplus", input=input)
    scaled = input * beta
    soft = _softplus_unscaled(scaled)
    return _C.where(scaled > threshold, input, soft if beta == 1.0 else soft / beta)


def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    """x clamped to [min_val, max_val]."""
    _check_float("hardtanh", input=input)
    if min_val > max_val:
        raise ValueError(f"hardtanh: min_val ({min_val}) cannot be greater than max_val ({max_val})")
    return input.clamp_(min_val, max_val) if inplace else input.clamp(min_val, max_val)


def relu6(input, inplace=False):
    return hardtanh(input, 0.0, 6.0, inplace)


def mish(input, inplace=False):
    """x·tanh(softplus(x))."""
    _check_float("mish", input=input)
    gate = _softplus_unscaled(input).tanh()
    return input.mul_(gate) if inplace else input * gate


def hardsigmoid(input, inplace=False):
    """relu6(x + 3) / 6."""
    _check_float("hardsigmoid", input=input)
    if inplace:
        return input.add_(3.0).clamp_(0.0, 6.0).div_(6.0)
    return (input + 3.0).clamp(0.0, 6.0) / 6.0


def hardswish(input, inplace=False):
    """x·relu6(x + 3) / 6."""
    _check_float("hardswish", input=input)
    gate = (input + 3.0).clamp(0.0, 6.0)
    return input.mul_(gate).div_(6.0) if inplace else input * gate / 6.0


def softsign(input):
    """x / (1 + |x|)."""
    _check_float("softsign", input=input)
    return input / (input.abs() + 1)


def glu(input, dim=-1):
    """a·σ(b) for the two halves a, b of input along dim."""
    _check_float("glu", input=input)
    if input.dim() == 0 or input.shape[dim] % 2:
        raise ValueError(f"glu: halving dimension must be even, but dimension {dim} of input "
                         f"{tuple(input.shape)} is not")
    a, b = input.chunk(2, dim)
    return a * b.sigmoid()


def prelu(input, weight):
    """x for x > 0, weight·x otherwise; weight has 1 element or one per channel (dim 1)."""
    _check_float("prelu", input=input, weight=weight)
    channels = input.shape[1] if input.dim() >= 2 else 1
    if weight.dim() > 1 or weight.numel() not in (1, channels):
        raise ValueError(f"prelu: weight of shape {tuple(weight.shape)} must have 1 element or one per channel "
                         f"({channels}) of input {tuple(input.shape)}")
    if weight.numel() > 1:
        weight = weight.reshape([channels] + [1] * (input.dim() - 2))
    return _C.where(input > 0, input, input * weight)


# ---- more losses ------------------------------------------------------------------------------

__all__ += ["smooth_l1_loss", "huber_loss", "kl_div", "triplet_margin_loss"]


def _legacy_reduction(size_average, reduce, reduction):
    """reduction, or the one that torch's deprecated size_average/reduce flags stand for (with its warning)."""
    if size_average is None and reduce is None:
        return reduction
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    legacy = ("mean" if size_average else "sum") if reduce else "none"
    warnings.warn(f"size_average and reduce args will be deprecated, please use reduction='{legacy}' instead.",
                  stacklevel=3)
    return legacy


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0):
    """0.5·d²/beta where |d| < beta, |d| - 0.5·beta elsewhere (d = input - target); beta=0 is l1_loss."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    if beta < 0:
        raise ValueError(f"smooth_l1_loss does not support negative values for beta, got {beta}")
    if beta == 0:
        return l1_loss(input, target, reduction)
    d = _pointwise_loss("smooth_l1_loss", input, target)
    size = d.abs()
    return _reduce(_C.where(size < beta, d.square() * 0.5 / beta, size - 0.5 * beta), reduction)


def huber_loss(input, target, reduction="mean", delta=1.0, weight=None):
    """0.5·d² where |d| < delta, delta·(|d| - 0.5·delta) elsewhere; optionally times a per-element weight."""
    if delta <= 0:
        raise ValueError(f"huber_loss does not support non-positive values for delta, got {delta}")
    d = _pointwise_loss("huber_loss", input, target)
    _check_float("huber_loss", weight=weight)
    size = d.abs()
    loss = _C.where(size < delta, d.square() * 0.5, (size - 0.5 * delta) * delta)
    if weight is not None:
        if tuple(weight.shape) != tuple(input.shape):
            raise ValueError(f"huber_loss: weight of shape {tuple(weight.shape)} must have the input's shape "
                             f"{tuple(input.shape)}")
        loss = loss * weight
    return _reduce(loss, reduction)


def kl_div(input, target, size_average=None, reduce=None, reduction="mean", log_target=False):
    """Pointwise KL divergence target·(log target - input) for log-probabilities input (target as
    log-probabilities too with log_target); 0 where target is 0. reduction 'batchmean' divides the sum
    by the batch size (the mathematical KL divergence); 'mean' divides by the element count."""
    _check_float("kl_div", input=input, target=target)
    if size_average is not None or reduce is not None:
        reduction = _legacy_reduction(size_average, reduce, reduction)
    elif reduction == "mean":
        warnings.warn("reduction: 'mean' divides the total loss by both the batch size and the support size."
                      "'batchmean' divides only by the batch size, and aligns with the KL div math definition."
                      "'mean' will be changed to behave the same as 'batchmean' in the next major release.",
                      stacklevel=2)
    if log_target:
        loss = target.exp() * (target - input)
    else:
        present = target != 0  # xlogy(t, t) = 0 at t = 0; log is taken of 1 there so no inf reaches the gradient
        loss = _C.where(present, target * _C.where(present, target, 1.0).log(), 0.0) - target * input
    if reduction == "batchmean":
        total = loss.sum()
        return total / input.shape[0] if input.dim() else total
    return _reduce(loss, reduction)


def triplet_margin_loss(anchor, positive, negative, margin=1.0, p=2, eps=1e-6, swap=False, size_average=None,
                        reduce=None, reduction="mean"):
    """max(d(a, p) - d(a, n) + margin, 0) with d the pairwise p-norm distance (swap: d(a, n) is the
    smaller of d(a, n) and d(p, n))."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_float("triplet_margin_loss", anchor=anchor, positive=positive, negative=negative)
    if margin <= 0:
        raise ValueError(f"triplet_margin_loss: margin must be greater than 0, got {margin}")
    if not anchor.dim() == positive.dim() == negative.dim():
        raise ValueError(f"triplet_margin_loss: the anchor, positive, and negative tensors are expected to have "
                         f"the same number of dimensions, but got: anchor {anchor.dim()}D, positive "
                         f"{positive.dim()}D, and negative {negative.dim()}D inputs")
    d_pos = pairwise_distance(anchor, positive, p, eps)
    d_neg = pairwise_distance(anchor, negative, p, eps)
    if swap:
        d_neg = d_neg.minimum(pairwise_distance(positive, negative, p, eps))
    return _reduce((d_pos - d_neg + margin).clamp(min=0.0), reduction)


# ---- distances, normalisation and encodings ---------------------------------------------------

__all__ += ["cosine_similarity", "pairwise_distance", "normalize", "one_hot"]


def _vector_norm(x, p, dim, keepdim=False):
    """The p-norm of x along dim (p = inf: the largest |x|; p = 0: the count of nonzeros), with the
    gradient at a zero vector 0 rather than NaN, as torch's norm gives."""
    if p == float("inf"):
        return x.abs().amax(dim, keepdim=keepdim)
    if p == 0:
        return (x != 0).to(x.dtype).sum(dim, keepdim=keepdim)
    if p <= 0:
        raise ValueError(f"norm: p must be positive, 0 or inf, got {p}")
    powered = x.square() if p == 2 else x.abs().pow(float(p))
    total = powered.sum(dim, keepdim=keepdim)
    if p == 1:
        return total
    nonzero = total > 0
    root = _C.where(nonzero, total, 1.0)
    return _C.where(nonzero, root.sqrt() if p == 2 else root.pow(1.0 / p), 0.0)


def cosine_similarity(x1, x2, dim=1, eps=1e-8):
    """Σ (x1/‖x1‖)·(x2/‖x2‖) along dim, each norm clamped below at eps (the clamp does not enter the
    gradient, as in torch); x1 and x2 broadcast."""
    _check_float("cosine_similarity", x1=x1, x2=x2)

    def unit(x):
        norm = _vector_norm(x, 2, dim, keepdim=True)
        with no_grad():
            lift = norm.clamp(min=eps) - norm
        return x / (norm + lift)

    return (unit(x1) * unit(x2)).sum(dim)


def pairwise_distance(x1, x2, p=2.0, eps=1e-6, keepdim=False):
    """‖x1 - x2 + eps‖_p along the last dimension (x1 and x2 broadcast)."""
    _check_float("pairwise_distance", x1=x1, x2=x2)
    return _vector_norm(x1 - x2 + eps, p, -1, keepdim)


def normalize(input, p=2.0, dim=1, eps=1e-12, out=None):
    """input / max(‖input‖_p along dim, eps)."""
    _check_float("normalize", input=input)
    if out is not None:
        raise TypeError("normalize: out= is not supported; use the returned tensor")
    return input / _vector_norm(input, p, dim, keepdim=True).clamp(min=eps)


def one_hot(tensor, num_classes=-1):
    """int64 [..., num_classes] with a 1 at each index of the int64 tensor (num_classes=-1: max + 1)."""
    if not isinstance(tensor, Tensor) or tensor.dtype != _C.dtype.int64:
        got = tensor.dtype if isinstance(tensor, Tensor) else type(tensor).__name__
        raise TypeError(f"one_hot is only applicable to index tensor of type int64 (LongTensor), got {got}")
    if tensor.numel() == 0 and num_classes == -1:
        raise ValueError("one_hot: can not infer total number of classes from empty tensor")
    if tensor.numel():
        lowest, highest = int(tensor.min().item()), int(tensor.max().item())
        num_classes = highest + 1 if num_classes == -1 else num_classes
        if lowest < 0:
            raise ValueError("one_hot: class values must be non-negative")
        if highest >= num_classes:
            raise ValueError(f"one_hot: class values must be smaller than num_classes ({num_classes})")
    classes = _C.arange(num_classes, device=tensor.device)
    return (tensor.unsqueeze(-1) == classes).to(_C.dtype.int64)


def bilinear(input1, input2, weight, bias=None):
    """y_k = x1ᵀ·W_k·x2 + b_k for input1 [..., in1], input2 [..., in2], weight [out, in1, in2]."""
    _check_float("bilinear", input1=input1, input2=input2, weight=weight, bias=bias)
    if weight.dim() != 3 or input1.shape[-1] != weight.shape[1] or input2.shape[-1] != weight.shape[2] \
            or tuple(input1.shape[:-1]) != tuple(input2.shape[:-1]):
        raise ValueError(f"bilinear: expected input1 [..., in1], input2 [..., in2] with the same leading dims and "
                         f"weight [out, in1, in2], got {tuple(input1.shape)}, {tuple(input2.shape)} and "
                         f"{tuple(weight.shape)}")
    n_out, n1, n2 = weight.shape
    lead = list(input1.shape[:-1])
    x1, x2 = input1.reshape(-1, n1), input2.reshape(-1, n2)
    # x1 · W viewed as [in1, out·in2] gives each row's [out, in2] matrix; its product with x2 sums over in2
    mixed = (x1 @ weight.permute(1, 0, 2).reshape(n1, n_out * n2)).reshape(-1, n_out, n2)
    out = (mixed * x2.unsqueeze(1)).sum(-1)
    if bias is not None:
        out = out + bias
    return out.reshape(lead + [n_out])


__all__ += ["bilinear"]


# ---- transposed convolution -------------------------------------------------------------------

__all__ += ["conv_transpose2d"]


def _int_pair(name, arg, value, minimum):
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2 or not all(isinstance(v, int) and v >= minimum for v in pair):
        raise ValueError(f"{name}: {arg} must be an int or a pair of ints >= {minimum}, got {value!r}")
    return pair


def _spread(x, dim, step):
    """x with step - 1 zeros inserted between neighbours along dim (size n -> (n - 1)·step + 1)."""
    if step == 1:
        return x
    shape = list(x.shape)
    n = shape[dim]
    zeros = _C.zeros(tuple(shape[:dim + 1] + [step - 1] + shape[dim + 1:]), dtype=x.dtype, device=x.device)
    spread = _C.cat([x.unsqueeze(dim + 1), zeros], dim + 1).reshape(shape[:dim] + [n * step] + shape[dim + 1:])
    return spread.narrow(dim, 0, (n - 1) * step + 1)


def _flip(x, dim):
    """x reversed along dim, from slices and cat (kernel dims are small)."""
    return _C.cat([x.narrow(dim, i, 1) for i in range(x.shape[dim] - 1, -1, -1)], dim)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """The transpose (gradient) of conv2d: [N, C_in, H, W] (or [C_in, H, W]) with weight
    [C_in, C_out / groups, kH, kW] gives H_out = (H - 1)·stride - 2·padding + dilation·(kH - 1) +
    output_padding + 1 (likewise W).

    Computed as the equivalent direct convolution: the input spread out by stride (stride - 1 zeros
    between elements), padded by dilation·(k - 1) - padding each side (output_padding more after;
    negative pads crop), convolved at stride 1 with the kernel flipped and its channel roles swapped
    within each group. Differentiable in input, weight and bias through those ops.
    """
    _check_float("conv_transpose2d", input=input, weight=weight, bias=bias)
    if input.dim() not in (3, 4) or weight.dim() != 4:
        raise ValueError(f"conv_transpose2d: expected input [N, C_in, H, W] or [C_in, H, W] and weight "
                         f"[C_in, C_out / groups, kH, kW], got {tuple(input.shape)} and {tuple(weight.shape)}")
    stride = _int_pair("conv_transpose2d", "stride", stride, 1)
    padding = _int_pair("conv_transpose2d", "padding", padding, 0)
    output_padding = _int_pair("conv_transpose2d", "output_padding", output_padding, 0)
    dilation = _int_pair("conv_transpose2d", "dilation", dilation, 1)
    if not isinstance(groups, int) or groups < 1:
        raise ValueError(f"conv_transpose2d: groups must be a positive int, got {groups!r}")
    unbatched = input.dim() == 3
    x = input.unsqueeze(0) if unbatched else input
    c_in, c_out_group, kernel = x.shape[1], weight.shape[1], weight.shape[2:]
    if weight.shape[0] != c_in or c_in % groups:
        raise ValueError(f"conv_transpose2d: input with {c_in} channels needs weight [C_in={c_in}, C_out / groups, "
                         f"kH, kW] with C_in divisible by groups={groups}, got weight {tuple(weight.shape)}")
    if bias is not None and tuple(bias.shape) != (c_out_group * groups,):
        raise ValueError(f"conv_transpose2d: bias of shape {tuple(bias.shape)}, expected ({c_out_group * groups},)")
    for d in range(2):
        if output_padding[d] >= stride[d] and output_padding[d] >= dilation[d]:
            raise ValueError(f"conv_transpose2d: output padding must be smaller than either stride or dilation, "
                             f"got output_padding={output_padding}, stride={stride}, dilation={dilation}")
        size = ((x.shape[2 + d] - 1) * stride[d] - 2 * padding[d] + dilation[d] * (kernel[d] - 1)
                + output_padding[d] + 1)
        if size <= 0:
            raise ValueError(f"conv_transpose2d: input {tuple(input.shape)} with weight {tuple(weight.shape)}, "
                             f"stride {stride}, padding {padding} gives an empty output (size {size} in dim {2 + d})")
    x = _spread(_spread(x, 2, stride[0]), 3, stride[1])
    (top, left) = [dilation[d] * (kernel[d] - 1) - padding[d] for d in range(2)]
    x = pad(x, (left, left + output_padding[1], top, top + output_padding[0]))
    c_in_group = c_in // groups
    w = weight.reshape(groups, c_in_group, c_out_group, *kernel).transpose(1, 2)
    w = _flip(_flip(w.reshape(groups * c_out_group, c_in_group, *kernel), 2), 3)
    out = conv2d(x, w, bias, 1, 0, dilation, groups)
    return out.squeeze(0) if unbatched else out


# ---- resampling and pixel shuffling -----------------------------------------------------------

__all__ += ["interpolate", "upsample", "upsample_nearest", "upsample_bilinear", "pixel_shuffle",
            "pixel_unshuffle"]

_INTERPOLATE_MODES = {"nearest": (1, 2, 3), "nearest-exact": (1, 2, 3), "linear": (1,), "bilinear": (2,),
                      "trilinear": (3,), "area": (1, 2), "bicubic": ()}


def _interpolate_sizes(input, size, scale_factor, recompute_scale_factor, mode):
    """(output sizes, scale factors or None per spatial dim), as torch's interpolate works them out."""
    dims = input.dim() - 2
    spatial = list(input.shape[2:])
    if size is not None and scale_factor is not None:
        raise ValueError("interpolate: only one of size or scale_factor should be defined")
    if size is None and scale_factor is None:
        raise ValueError("interpolate: either size or scale_factor should be defined")
    if size is not None:
        if recompute_scale_factor:
            raise ValueError("interpolate: recompute_scale_factor is not meaningful with an explicit size")
        sizes = list(size) if isinstance(size, (tuple, list)) else [size] * dims
        if len(sizes) != dims:
            raise ValueError(f"interpolate: input and output must have the same number of spatial dimensions, but "
                             f"got input with spatial dimensions of {spatial} and output size of {size}")
        scales = None
    else:
        scales = list(scale_factor) if isinstance(scale_factor, (tuple, list)) else [scale_factor] * dims
        if len(scales) != dims:
            raise ValueError(f"interpolate: scale_factor shape must match input shape. Input is {dims}D, "
                             f"scale_factor size is {len(scales)}")
        sizes = [math.floor(float(n) * float(s)) for n, s in zip(spatial, scales)]
        if recompute_scale_factor or mode == "area":
            scales = None
    if not all(isinstance(n, int) and n > 0 for n in sizes):
        raise ValueError(f"interpolate: output sizes should be integers greater than 0, but got input "
                         f"{spatial} and output {sizes}")
    return sizes, scales


def _resample_dim(x, dim, taps):
    """Σ_k x.index_select(dim, index_k)·weight_k over taps [(index_k, weight_k [m] or None)], differentiable.

    dim is brought to the front of a [n, rest] matrix (one copy), the taps are row gathers (embedding,
    whose gradient is a scatter-add) combined while contiguous, and the result goes back (one copy)."""
    shape = list(x.shape)
    prefix, n, suffix = math.prod(shape[:dim]), shape[dim], math.prod(shape[dim + 1:])
    rows = x.reshape(prefix, n, suffix).transpose(0, 1).reshape(n, prefix * suffix)
    out = None
    for index, weight in taps:
        picked = embedding(index, rows)
        if weight is not None:
            picked = picked * weight.to(x.dtype).unsqueeze(1)
        out = picked if out is None else out + picked
    m = out.shape[0]
    return out.reshape(m, prefix, suffix).transpose(0, 1).reshape(shape[:dim] + [m] + shape[dim + 1:])


def _nearest_source(n_in, n_out, scale, exact, device):
    """torch's nearest(-exact) source indices: floor((i [+ 0.5])·s) in float32, s = 1/scale_factor or in/out."""
    if not exact and n_out == 2 * n_in:  # torch's exact shortcut
        return _C.arange(n_out, device=device).floor_divide(n_out // n_in)
    ratio = _C.full((), 1.0 / scale if scale is not None else n_in / n_out, dtype=_C.dtype.float32, device=device)
    position = _C.arange(n_out, dtype=_C.dtype.float32, device=device)
    if exact:
        position = position + 0.5
    return (position * ratio).floor().clamp(max=n_in - 1).to(_C.dtype.int64)


def _linear_source(n_in, n_out, scale, align_corners, dtype, device):
    """torch's linear-interpolation taps for one dimension: (index0, index1, weight0, weight1)."""
    if align_corners:
        ratio = (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
    else:
        ratio = 1.0 / scale if scale is not None else n_in / n_out
    ratio = _C.full((), ratio, dtype=dtype, device=device)
    position = _C.arange(n_out, dtype=dtype, device=device)
    source = position * ratio if align_corners else ((position + 0.5) * ratio - 0.5).clamp(min=0.0)
    index0 = source.floor().clamp(max=n_in - 1)
    weight1 = (source - index0).clamp(0.0, 1.0)
    index0 = index0.to(_C.dtype.int64)
    index1 = (index0 + 1).clamp(max=n_in - 1)
    return index0, index1, 1.0 - weight1, weight1


def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None, recompute_scale_factor=None,
                antialias=False):
    """Resample the spatial dims of [N, C, d1, ...] input to size (or d·scale_factor, rounded down).

    mode 'nearest' / 'nearest-exact' (any of 1-3 spatial dims), 'linear' / 'bilinear' / 'trilinear'
    (1 / 2 / 3 spatial dims; align_corners as torch), or 'area' (adaptive average pooling; 1-2 spatial
    dims). Source positions follow torch's formulas, including that a given scale_factor (unless
    recompute_scale_factor) sets the ratio 1/scale_factor. Gradients reach input through gathers.
    """
    _check_float("interpolate", input=input)
    if mode not in _INTERPOLATE_MODES:
        raise ValueError(f"interpolate: mode must be one of {list(_INTERPOLATE_MODES)}, got {mode!r}")
    dims = input.dim() - 2
    if dims not in _INTERPOLATE_MODES[mode]:
        if mode == "bicubic":
            raise NotImplementedError("interpolate: mode 'bicubic' is not implemented in Lepton; use 'bilinear'")
        wanted = " or ".join(f"{d + 2}D" for d in _INTERPOLATE_MODES[mode])
        raise ValueError(f"interpolate: mode {mode!r} needs {wanted} input, got {input.dim()}D input "
                         f"{tuple(input.shape)}")
    linear = mode in ("linear", "bilinear", "trilinear")
    if align_corners is not None and not linear:
        raise ValueError("interpolate: align_corners option can only be set with the interpolating modes: "
                         "linear | bilinear | bicubic | trilinear")
    if antialias:
        raise NotImplementedError("interpolate: antialias=True is not implemented in Lepton")
    sizes, scales = _interpolate_sizes(input, size, scale_factor, recompute_scale_factor, mode)
    if mode == "area":
        if dims == 1:
            return adaptive_avg_pool2d(input.unsqueeze(2), (1, sizes[0])).squeeze(2)
        return adaptive_avg_pool2d(input, tuple(sizes))
    compute = _C.dtype.float64 if input.dtype == _C.dtype.float64 else _C.dtype.float32
    out = input
    for d, n_out in enumerate(sizes):
        dim, n_in, scale = d + 2, input.shape[d + 2], None if scales is None else scales[d]
        if n_out == n_in:  # torch copies such a dimension whatever the scale factor
            continue
        if not linear:
            out = _resample_dim(out, dim, [(_nearest_source(n_in, n_out, scale, mode == "nearest-exact",
                                                            input.device), None)])
        else:
            index0, index1, weight0, weight1 = _linear_source(n_in, n_out, scale, bool(align_corners), compute,
                                                              input.device)
            out = _resample_dim(out, dim, [(index0, weight0), (index1, weight1)])
    return out


def upsample(input, size=None, scale_factor=None, mode="nearest", align_corners=None):
    """interpolate (torch's deprecated name)."""
    return interpolate(input, size, scale_factor, mode, align_corners)


def upsample_nearest(input, size=None, scale_factor=None):
    return interpolate(input, size, scale_factor, mode="nearest")


def upsample_bilinear(input, size=None, scale_factor=None):
    """Bilinear with align_corners=True (torch's deprecated upsample_bilinear)."""
    return interpolate(input, size, scale_factor, mode="bilinear", align_corners=True)


def _shuffle_factor(name, factor):
    if not isinstance(factor, int) or factor < 1:
        raise ValueError(f"{name}: the factor must be a positive int, got {factor!r}")


def pixel_shuffle(input, upscale_factor):
    """[*, C·r², H, W] -> [*, C, H·r, W·r]: each group of r² channels becomes an r×r block."""
    _shuffle_factor("pixel_shuffle", upscale_factor)
    if not isinstance(input, Tensor) or input.dim() < 3:
        raise ValueError(f"pixel_shuffle expects input to have at least 3 dimensions, got "
                         f"{tuple(input.shape) if isinstance(input, Tensor) else type(input).__name__}")
    r, lead, (c, h, w) = upscale_factor, list(input.shape[:-3]), input.shape[-3:]
    if c % (r * r):
        raise ValueError(f"pixel_shuffle expects its input's 'channel' dimension to be divisible by the square of "
                         f"upscale_factor, but input.size(-3)={c} is not divisible by {r * r}")
    n = len(lead)
    x = input.reshape(lead + [c // (r * r), r, r, h, w])
    order = list(range(n)) + [n, n + 3, n + 1, n + 4, n + 2]
    return x.permute(*order).reshape(lead + [c // (r * r), h * r, w * r])


def pixel_unshuffle(input, downscale_factor):
    """[*, C, H·r, W·r] -> [*, C·r², H, W], the inverse of pixel_shuffle."""
    _shuffle_factor("pixel_unshuffle", downscale_factor)
    if not isinstance(input, Tensor) or input.dim() < 3:
        raise ValueError(f"pixel_unshuffle expects input to have at least 3 dimensions, got "
                         f"{tuple(input.shape) if isinstance(input, Tensor) else type(input).__name__}")
    r, lead, (c, h, w) = downscale_factor, list(input.shape[:-3]), input.shape[-3:]
    if h % r or w % r:
        raise ValueError(f"pixel_unshuffle expects height and width to be divisible by downscale_factor={r}, "
                         f"got input of shape {tuple(input.shape)}")
    n = len(lead)
    x = input.reshape(lead + [c, h // r, r, w // r, r])
    order = list(range(n)) + [n, n + 2, n + 4, n + 1, n + 3]
    return x.permute(*order).reshape(lead + [c * r * r, h // r, w // r])


# ---- instance norm and channel dropout --------------------------------------------------------

__all__ += ["instance_norm", "dropout1d", "dropout2d", "dropout3d"]


def instance_norm(input, running_mean=None, running_var=None, weight=None, bias=None, use_input_stats=True,
                  momentum=0.1, eps=1e-5):
    """Normalises each [N, C, ...] sample's channel over its spatial dims (biased variance), then
    weight·x + bias per channel. With use_input_stats=False it uses running_mean/running_var instead;
    with them given and use_input_stats, it moves them towards the batch average of the instances'
    means and unbiased variances by momentum, as torch does."""
    _check_float("instance_norm", input=input, weight=weight, bias=bias)
    if input.dim() < 3:
        raise ValueError(f"instance_norm: expected input [N, C, *spatial] with at least one spatial dim, got "
                         f"{tuple(input.shape)}")
    n, c, spatial = input.shape[0], input.shape[1], list(input.shape[2:])
    if not use_input_stats:
        if running_mean is None or running_var is None:
            raise ValueError("instance_norm: expected running_mean and running_var to be defined when "
                             "use_input_stats is false")
        return batch_norm(input, running_mean, running_var, weight, bias, False, momentum, eps)
    if math.prod(spatial) == 1:
        raise ValueError(f"instance_norm: expected more than 1 spatial element when training, got input size "
                         f"{tuple(input.shape)}")
    if running_mean is not None or running_var is not None:
        with no_grad():
            dims = list(range(2, input.dim()))
            stats = input.float() if _is_16bit(input) else input
            for running, value in ((running_mean, stats.mean(dims)), (running_var, stats.var(dims, correction=1))):
                if running is not None:
                    running.mul_(1 - momentum).add_(value.mean(0).to(running.dtype) * momentum)

    def per_instance(t):  # a per-channel [C] parameter repeated for each of the N samples
        return None if t is None else t.unsqueeze(0).expand(n, c).reshape(n * c)

    out = batch_norm(input.reshape([1, n * c] + spatial), None, None, per_instance(weight), per_instance(bias),
                     True, momentum, eps)
    return out.reshape(list(input.shape))


def _feature_dropout(name, input, p, training, inplace, channel_dim):
    """Zeroes whole channels (every element sharing the indices up to channel_dim) with probability p,
    scaling the rest by 1/(1-p); identity unless training."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if input.dim() <= channel_dim:
        raise ValueError(f"{name}: expected an input with a channel dimension {channel_dim}, got {tuple(input.shape)}")
    if not training or p == 0.0:
        return input
    shape = tuple(input.shape[:channel_dim + 1]) + (1,) * (input.dim() - channel_dim - 1)
    mask = dropout(_C.ones(shape, dtype=input.dtype, device=input.device), p)
    return input.mul_(mask) if inplace else input * mask


def _deprecated_rank(name, input, ranks):
    if input.dim() not in ranks:
        warnings.warn(f"{name}: Received a {input.dim()}-D input to {name}, which is deprecated and will result in "
                      f"an error in a future release. To retain the behavior and silence this warning, please use "
                      f"dropout instead.", stacklevel=3)


def dropout1d(input, p=0.5, training=True, inplace=False):
    """Channel dropout of [N, C, L] (or unbatched [C, L]) input."""
    _check_float("dropout1d", input=input)
    if input.dim() not in (2, 3):
        raise ValueError(f"dropout1d: Expected 2D or 3D input, but received a {input.dim()}D input")
    return _feature_dropout("dropout1d", input, p, training, inplace, 1 if input.dim() == 3 else 0)


def dropout2d(input, p=0.5, training=True, inplace=False):
    """Channel dropout of [N, C, H, W] input. As in torch, a 3-D input is read as [N, C, L] (with a
    warning), not as an unbatched [C, H, W]."""
    _check_float("dropout2d", input=input)
    _deprecated_rank("dropout2d", input, (3, 4))
    if input.dim() == 3:
        warnings.warn("dropout2d: Received a 3D input to dropout2d and assuming that channel-wise 1D dropout "
                      "behavior is desired - input is interpreted as shape (N, C, L), where C is the channel "
                      "dim. To maintain the 1D channel-wise dropout behavior, please switch to using dropout1d "
                      "instead.", stacklevel=2)
    return _feature_dropout("dropout2d", input, p, training, inplace, 1)


def dropout3d(input, p=0.5, training=True, inplace=False):
    """Channel dropout of [N, C, D, H, W] (or unbatched [C, D, H, W]) input."""
    _check_float("dropout3d", input=input)
    _deprecated_rank("dropout3d", input, (4, 5))
    return _feature_dropout("dropout3d", input, p, training, inplace, 1 if input.dim() == 5 else 0)
