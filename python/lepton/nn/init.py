"""Weight initialisation (torch.nn.init): in-place, without recording a graph, drawn from lepton's RNG.

lepton.manual_seed(s) makes every function here reproducible; with `generator=` (a
lepton.Generator) a function draws from that generator's stream instead. The names without the
trailing underscore (uniform, normal, ...) are torch's deprecated aliases and warn as torch's do.
"""

import math
import warnings

from lepton import _C
from lepton._generator import using_generator
from lepton.autograd import no_grad

__all__ = ["calculate_gain", "uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_", "dirac_",
           "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_", "sparse_",
           "uniform", "normal", "constant", "eye", "dirac", "xavier_uniform", "xavier_normal", "kaiming_uniform",
           "kaiming_normal", "orthogonal", "sparse"]


def calculate_gain(nonlinearity, param=None):
    """The recommended std scale for a nonlinearity: linear/conv/sigmoid 1, tanh 5/3, relu √2,
    leaky_relu √(2/(1+slope²)) with slope `param` (default 0.01), selu 3/4."""
    if nonlinearity in ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                        "conv_transpose3d", "sigmoid"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, (int, float)) and not isinstance(param, bool):
            slope = param
        else:
            raise ValueError(f"negative_slope {param} not a valid number")
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}")


def _calculate_fan_in_and_fan_out(tensor):
    if tensor.dim() < 2:
        raise ValueError("Fan in and fan out can not be computed for tensor with fewer than 2 dimensions "
                         f"(got shape {tuple(tensor.shape)})")
    receptive_field = math.prod(tensor.shape[2:])  # conv kernels: [out, in, *kernel]
    return tensor.shape[1] * receptive_field, tensor.shape[0] * receptive_field


def _calculate_correct_fan(tensor, mode):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"Mode {mode} not supported, please use one of fan_in, fan_out")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def _default_layer_init_(weight, bias=None):
    """PyTorch's default for Linear and Conv layers: kaiming_uniform_(a=√5), which is
    U(-1/√fan_in, 1/√fan_in), and the same bound for the bias."""
    kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        fan_in, _ = _calculate_fan_in_and_fan_out(weight)
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
        uniform_(bias, -bound, bound)


@no_grad()
def uniform_(tensor, a=0.0, b=1.0, generator=None):
    with using_generator(generator):
        tensor.uniform_(a, b)
    return tensor


@no_grad()
def normal_(tensor, mean=0.0, std=1.0, generator=None):
    with using_generator(generator):
        tensor.normal_(mean, std)
    return tensor


@no_grad()
def constant_(tensor, val):
    tensor.fill_(val)
    return tensor


def zeros_(tensor):
    return constant_(tensor, 0.0)


def ones_(tensor):
    return constant_(tensor, 1.0)


def xavier_uniform_(tensor, gain=1.0, generator=None):
    """U(-a, a) with a = gain·√(6/(fan_in+fan_out)) (Glorot & Bengio, 2010)."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    bound = math.sqrt(3.0) * gain * math.sqrt(2.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound, generator)


def xavier_normal_(tensor, gain=1.0, generator=None):
    """N(0, std²) with std = gain·√(2/(fan_in+fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), generator)


def _skip_empty(tensor):
    if tensor.numel() == 0:
        warnings.warn("Initializing zero-element tensors is a no-op")
        return True
    return False


def _kaiming_std(tensor, a, mode, nonlinearity):
    return calculate_gain(nonlinearity, a) / math.sqrt(_calculate_correct_fan(tensor, mode))


def kaiming_uniform_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """U(-bound, bound) with bound = gain·√(3/fan) (He et al., 2015); `a` is leaky_relu's slope."""
    if _skip_empty(tensor):
        return tensor
    bound = math.sqrt(3.0) * _kaiming_std(tensor, a, mode, nonlinearity)
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """N(0, std²) with std = gain/√fan."""
    if _skip_empty(tensor):
        return tensor
    return normal_(tensor, 0.0, _kaiming_std(tensor, a, mode, nonlinearity), generator)


@no_grad()
def trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0, generator=None):
    """N(mean, std²) restricted to [a, b], by rejection: when [a, b] holds more than 30% of the
    normal's mass, normal draws outside it are redrawn; otherwise uniform draws on [a, b] are
    kept with probability density / (the density's maximum on [a, b]) (torch's two regimes)."""
    if not a < b:
        raise ValueError(f"trunc_normal_: need a < b, got a={a}, b={b}")
    if mean < a - 2 * std or mean > b + 2 * std:
        warnings.warn("mean is more than 2 std from [a, b] in nn.init.trunc_normal_. "
                      "The distribution of values may be incorrect.", stacklevel=2)
    mass = (math.erf((b - mean) / (std * math.sqrt(2))) - math.erf((a - mean) / (std * math.sqrt(2)))) / 2
    with using_generator(generator):
        if mass > 0.3:
            _redraw_normals_outside(tensor, mean, std, a, b)
        else:
            _uniform_proposals(tensor, mean, std, a, b)
    return tensor


def _redraw_normals_outside(tensor, mean, std, a, b):
    tensor.normal_(mean, std)
    while True:  # each round redraws only the values outside [a, b]
        redraw = (tensor < a).logical_or(tensor > b)
        if not redraw.any().item():
            return
        tensor.copy_(_C.where(redraw, _fresh(tensor).normal_(mean, std), tensor))


def _uniform_proposals(tensor, mean, std, a, b):
    peak = max(a, min(mean, b))  # where the density is highest on [a, b]

    def rejected(x):  # log(u) > log(density(x) / density(peak))
        log_ratio = ((x - mean) / std).square_().mul_(-0.5).add_(0.5 * ((peak - mean) / std) ** 2)
        return _fresh(x).uniform_().log_() > log_ratio

    tensor.uniform_(a, b)
    pending = rejected(tensor)
    while pending.any().item():  # each round proposes again where the last proposal was rejected
        proposal = _fresh(tensor).uniform_(a, b)
        tensor.copy_(_C.where(pending, proposal, tensor))
        pending = pending.logical_and(rejected(proposal))


def _fresh(tensor):
    return _C.empty(tensor.shape, dtype=tensor.dtype, device=tensor.device)


@no_grad()
def eye_(tensor):
    """The identity matrix (ones on the main diagonal of a rectangular 2-d tensor)."""
    if tensor.dim() != 2:
        raise ValueError(f"Only tensors with 2 dimensions are supported (got shape {tuple(tensor.shape)})")
    rows, cols = tensor.shape
    diagonal = _C.arange(rows, device=tensor.device).unsqueeze(1) == _C.arange(cols, device=tensor.device).unsqueeze(0)
    return tensor.copy_(diagonal)


@no_grad()
def dirac_(tensor, groups=1):
    """The Dirac delta of a conv weight [out, in, *kernel]: output channel d of each of the `groups`
    groups passes input channel d through at the kernel's centre (as many channels as the smaller
    of out/groups and in), so that the conv is the identity on them."""
    if tensor.dim() not in (3, 4, 5):
        raise ValueError(f"Only tensors with 3, 4, or 5 dimensions are supported (got shape {tuple(tensor.shape)})")
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise ValueError(f"dirac_: groups must be a positive int, got {groups}")
    if tensor.shape[0] % groups != 0:
        raise ValueError(f"dim 0 must be divisible by groups (got {tensor.shape[0]} and groups={groups})")
    per_group = tensor.shape[0] // groups
    centre = tuple(size // 2 for size in tensor.shape[2:])
    tensor.zero_()
    for g in range(groups):
        for d in range(min(per_group, tensor.shape[1])):
            tensor[(g * per_group + d, d) + centre] = 1
    return tensor


@no_grad()
def orthogonal_(tensor, gain=1, generator=None):
    """A (semi-)orthogonal matrix times gain (Saxe et al., 2013), the trailing dimensions flattened:
    orthonormal columns if rows >= columns, else orthonormal rows. It is the Q of a Gaussian
    matrix's QR factorisation with R's diagonal made positive (a Haar-distributed draw, as torch's),
    found by Gram-Schmidt with re-orthogonalisation."""
    if tensor.dim() < 2:
        raise ValueError(f"Only tensors with 2 or more dimensions are supported (got shape {tuple(tensor.shape)})")
    if tensor.numel() == 0:
        return tensor
    rows = tensor.shape[0]
    cols = tensor.numel() // rows
    work = _C.dtype.float64 if tensor.dtype == _C.dtype.float64 else _C.dtype.float32
    with using_generator(generator):  # orthonormalised row by row below
        q = _C.randn(min(rows, cols), max(rows, cols), dtype=work, device=tensor.device)
    for j in range(q.shape[0]):
        v = q.select(0, j)
        if j:
            done = q.narrow(0, 0, j)
            for _ in range(2):  # a second pass removes what rounding left of the first
                v = v - done.t() @ (done @ v)
        q.select(0, j).copy_(v / (v * v).sum().sqrt())
    flat = q if rows < cols else q.t()
    tensor.copy_(flat.reshape(tensor.shape)).mul_(gain)
    return tensor


@no_grad()
def sparse_(tensor, sparsity, std=0.01, generator=None):
    """N(0, std²) values with a random ceil(sparsity·rows) of them set to zero in every column
    (Martens, 2010)."""
    if tensor.dim() != 2:
        raise ValueError(f"Only tensors with 2 dimensions are supported (got shape {tuple(tensor.shape)})")
    rows, cols = tensor.shape
    with using_generator(generator):
        tensor.normal_(0, std)
        keys = _C.rand(rows, cols, dtype=_C.dtype.float64, device=tensor.device)
    # each column zeroes the rows of its `zeros` smallest keys: a uniformly random subset per column
    rank = keys.argsort(dim=0).argsort(dim=0)
    zeros = math.ceil(sparsity * rows)
    return tensor.copy_(_C.where(rank < zeros, _C.zeros([rows, cols], dtype=tensor.dtype, device=tensor.device),
                                 tensor))


def _deprecated(fn):
    old = fn.__name__[:-1]

    def alias(*args, **kwargs):
        warnings.warn(f"`nn.init.{old}` is now deprecated in favor of `nn.init.{fn.__name__}`.", FutureWarning,
                      stacklevel=2)
        return fn(*args, **kwargs)

    alias.__name__ = alias.__qualname__ = old
    alias.__doc__ = f"Deprecated alias of {fn.__name__}."
    return alias


uniform, normal, constant, eye, dirac, xavier_uniform, xavier_normal, kaiming_uniform, kaiming_normal, orthogonal, \
    sparse = map(_deprecated, (uniform_, normal_, constant_, eye_, dirac_, xavier_uniform_, xavier_normal_,
                               kaiming_uniform_, kaiming_normal_, orthogonal_, sparse_))
