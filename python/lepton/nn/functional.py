"""lepton.nn.functional: stateless layers and losses (torch.nn.functional) composed of lepton ops.

Every function here is differentiable through the ops it is made of; softmax, log_softmax and the
unweighted class-index cross_entropy call fused kernels whose backward lives in C++.
"""

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
