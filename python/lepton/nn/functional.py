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
    return _in_float32_if_half(_C.log_softmax, input, _softmax_dim("log_softmax", input, dim))


def softmax(input, dim=None, dtype=None):
    """exp(x - max) / Σ exp(x - max) along dim, in one fused kernel: never overflows, rows sum to 1."""
    if dtype is not None:
        input = input.to(dtype)
    return _in_float32_if_half(_C.softmax, input, _softmax_dim("softmax", input, dim))


def _in_float32_if_half(op, input, dim):
    """The fused kernels are float32/float64: 16-bit inputs compute in float32 and round once."""
    if input.dtype in (_C.dtype.float16, _C.dtype.bfloat16):
        return op(input.float(), dim).to(input.dtype)
    return op(input, dim)


def dropout(input, p=0.5, training=True, inplace=False):
    """Zeroes each element with probability p and scales the rest by 1/(1-p); identity unless training."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return input.mul_(0.0) if inplace else input * 0.0
    keep = _C.rand(input.shape, dtype=input.dtype, device=input.device) >= p
    scale = keep.to(input.dtype) * (1.0 / (1.0 - p))
    return input.mul_(scale) if inplace else input * scale


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


def mse_loss(input, target, reduction="mean"):
    return _reduce(_pointwise_loss("mse_loss", input, target).square(), reduction)


def l1_loss(input, target, reduction="mean"):
    return _reduce(_pointwise_loss("l1_loss", input, target).abs(), reduction)


def binary_cross_entropy(input, target, weight=None, reduction="mean"):
    """-w·(y·log x + (1-y)·log(1-x)) for probabilities x; each log is clamped at -100 as in torch."""
    _check_float("binary_cross_entropy", input=input, target=target, weight=weight)
    _check_same_shape("binary_cross_entropy", input, target)
    with no_grad():
        if (input < 0).logical_or(input > 1).any().item():
            raise RuntimeError("binary_cross_entropy: all elements of input should be between 0 and 1 "
                               "(use binary_cross_entropy_with_logits for logits)")
    loss = -(target * input.log().clamp(min=-100) + (1 - target) * (-input).log1p().clamp(min=-100))
    return _reduce(loss if weight is None else loss * weight, reduction)


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean", pos_weight=None):
    """BCE of sigmoid(input) computed from the logits: (1-y)·x - (1 + (pw-1)·y)·log σ(x), stable for any x."""
    _check_float("binary_cross_entropy_with_logits", input=input, target=target, weight=weight,
                 pos_weight=pos_weight)
    _check_same_shape("binary_cross_entropy_with_logits", input, target)
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
    loss, w, _ = _pick_targets("nll_loss", input, target, weight, ignore_index)
    return _reduce(loss, reduction, w)


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """Cross-entropy of logits [N, C, ...] or [C] against class indices (int64) or class probabilities.

    With label smoothing ε the loss is (1-ε)·nll + ε/C·Σ_c -w_c·log p_c, as in torch.
    """
    _check_float("cross_entropy", input=input, weight=weight)
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
