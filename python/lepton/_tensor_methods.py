"""Tensor methods with torch's signatures that are compositions of engine ops (or thin argument
handling over one). Each is differentiable through the ops it is made of; the in-place forms
compute out of place and copy into self, which takes over the result's autograd history.
"""

import builtins
import collections
import math

from lepton import _C
from lepton._C import Tensor

_DT = _C.dtype

# torch.return_types.sort / topk / max ...: a tuple with named fields
SortResult = collections.namedtuple("sort", ["values", "indices"])
TopkResult = collections.namedtuple("topk", ["values", "indices"])


def _sizes(args, name):
    """(*sizes) or (sizes,) as a tuple of ints."""
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        args = tuple(args[0])
    if not all(isinstance(s, int) or (isinstance(s, Tensor) and s.ndim == 0) for s in args):
        raise TypeError(f"{name}(): sizes must be ints, got {args!r}")
    return tuple(int(s) for s in args)


def _value_tensor(self, value, name):
    """value (a number or a 0-d tensor) as a 0-d tensor of self's dtype on self's device."""
    if isinstance(value, Tensor):
        if value.ndim != 0:
            raise ValueError(f"{name}() only supports a 0-dimensional value tensor, but got a tensor with "
                             f"{value.ndim} dimensions")
        return value.to(self.device, self.dtype)
    if not isinstance(value, (int, float, bool)):
        raise TypeError(f"{name}(): value must be a number or a 0-d tensor, got {type(value).__name__}")
    return _C.full([], value, dtype=self.dtype, device=self.device)


def _inplace(self, result):
    self.copy_(result)
    return self


# ---- matrix products ---------------------------------------------------------------------------

def mm(self, mat2):
    if self.ndim != 2 or not isinstance(mat2, Tensor) or mat2.ndim != 2:
        raise RuntimeError(f"mm(): both arguments must be 2-D matrices, got {tuple(self.shape)} and "
                           f"{tuple(mat2.shape) if isinstance(mat2, Tensor) else type(mat2).__name__}")
    return self.matmul(mat2)


def mv(self, vec):
    if self.ndim != 2 or vec.ndim != 1:
        raise RuntimeError(f"mv(): expected a matrix and a vector, got {tuple(self.shape)} and {tuple(vec.shape)}")
    return self.matmul(vec)


def dot(self, other):
    if self.ndim != 1 or other.ndim != 1:
        raise RuntimeError(f"dot(): 1D tensors expected, but got {self.ndim}D and {other.ndim}D tensors")
    return self.matmul(other)


def outer(self, vec2):
    if self.ndim != 1 or vec2.ndim != 1:
        raise RuntimeError(f"outer(): 1D tensors expected, got {self.ndim}D and {vec2.ndim}D")
    return self.unsqueeze(1) * vec2.unsqueeze(0)


def baddbmm(self, batch1, batch2, *, beta=1, alpha=1):
    """beta * self + alpha * (batch1 @ batch2); with beta = 0 self is not read (NaNs in it vanish)."""
    prod = batch1.bmm(batch2)
    if alpha != 1:
        prod = prod * alpha
    if beta == 0:
        return prod
    return prod + (self if beta == 1 else self * beta)


# ---- masking and selection ---------------------------------------------------------------------

def _check_mask(mask, name):
    if not isinstance(mask, Tensor) or mask.dtype != _DT.bool:
        got = mask.dtype if isinstance(mask, Tensor) else type(mask).__name__
        raise TypeError(f"{name}(): mask must be a bool tensor, got {got}")


def masked_fill(self, mask, value):
    _check_mask(mask, "masked_fill")
    if _broadcast_shape(self.shape, mask.shape) != tuple(self.shape):
        raise RuntimeError(f"masked_fill(): the mask of shape {tuple(mask.shape)} cannot be broadcast to the "
                           f"tensor's shape {tuple(self.shape)}")
    return _C.where(mask, _value_tensor(self, value, "masked_fill"), self)


def masked_fill_(self, mask, value):
    return _inplace(self, masked_fill(self, mask, value))


def masked_select(self, mask):
    _check_mask(mask, "masked_select")
    shape = _broadcast_shape(self.shape, mask.shape)
    return self.expand(*shape)[mask.expand(*shape)]


def _broadcast_shape(a, b):
    out = []
    for i in range(1, builtins.max(len(a), len(b)) + 1):
        x = a[-i] if i <= len(a) else 1
        y = b[-i] if i <= len(b) else 1
        if x != y and 1 not in (x, y):
            raise RuntimeError(f"shapes {tuple(a)} and {tuple(b)} cannot be broadcast together")
        out.append(builtins.max(x, y) if 0 not in (x, y) else 0)
    return tuple(reversed(out))


def gather(self, dim, index, *, sparse_grad=False):
    return _C.gather(self, dim, index)


def _src(self, index, src, value, name):
    if src is not None and value is not None:
        raise TypeError(f"{name}(): give src or value, not both")
    src = value if src is None else src
    if isinstance(src, Tensor):
        return src
    if src is None:
        raise TypeError(f"{name}() missing the src (or value) argument")
    return _value_tensor(self, src, name).expand(*index.shape)


def scatter(self, dim, index, src=None, *, value=None, reduce=None):
    src = _src(self, index, src, value, "scatter")
    if reduce is None:
        return _C.scatter(self, dim, index, src)
    if reduce == "add":
        return _C.scatter_add(self, dim, index, src)
    raise NotImplementedError(f"scatter(): reduce={reduce!r} is not supported by Lepton (only 'add'; for sums "
                              "use scatter_add, for other reductions scatter_reduce is not available)")


def scatter_(self, dim, index, src=None, *, value=None, reduce=None):
    return _inplace(self, scatter(self, dim, index, src, value=value, reduce=reduce))


def scatter_add(self, dim, index, src):
    return _C.scatter_add(self, dim, index, src)


def scatter_add_(self, dim, index, src):
    return _inplace(self, _C.scatter_add(self, dim, index, src))


def _along(index, dim, like):
    """A 1-D index along `dim` spread to `like`'s shape (what index_add/index_fill scatter with)."""
    if index.ndim > 1:
        raise IndexError(f"index must be a 1-D tensor, got shape {tuple(index.shape)}")
    shape = [1] * like.ndim
    dim = dim % builtins.max(like.ndim, 1)
    if like.ndim:
        shape[dim] = -1
    return index.reshape(*shape).expand(*like.shape) if like.ndim else index.reshape(())


def index_add(self, dim, index, source, *, alpha=1):
    if source.ndim and index.numel() != source.shape[dim]:
        raise IndexError(f"index_add(): the index has {index.numel()} entries but source has {source.shape[dim]} "
                         f"along dim {dim}")
    return _C.scatter_add(self, dim, _along(index, dim, source), source if alpha == 1 else source * alpha)


def index_add_(self, dim, index, source, *, alpha=1):
    return _inplace(self, index_add(self, dim, index, source, alpha=alpha))


def index_fill(self, dim, index, value):
    shape = list(self.shape)
    if self.ndim:
        shape[dim] = index.numel()
    like = _C.full(shape, 0, dtype=self.dtype, device=self.device)
    return _C.scatter(self, dim, _along(index, dim, like), _value_tensor(self, value, "index_fill").expand(*shape))


def index_fill_(self, dim, index, value):
    return _inplace(self, index_fill(self, dim, index, value))


# ---- sorting and running sums ------------------------------------------------------------------

def sort(self, dim=-1, descending=False, stable=False):
    return SortResult(*_C.sort(self, dim, descending))


def argsort(self, dim=-1, descending=False, stable=False):
    return _C.sort(self, dim, descending)[1]


def msort(self):
    return _C.sort(self, 0, False)[0]


def topk(self, k, dim=-1, largest=True, sorted=True):
    return TopkResult(*_C.topk(self, k, dim, largest))


def cumsum(self, dim, *, dtype=None):
    return _C.cumsum(self if dtype is None else self.to(dtype), dim)


def cumsum_(self, dim, *, dtype=None):
    return _inplace(self, cumsum(self, dim, dtype=dtype))


def multinomial(self, num_samples, replacement=False, *, generator=None):
    """Draws num_samples category indices per row of non-negative weights (1-D or 2-D).

    With replacement: inverse-CDF sampling of uniforms. Without: the Gumbel-top-k construction
    (the k largest of log(u)/w), which draws k distinct categories with torch's sequential
    probabilities. Uniforms come from Lepton's generator (lepton.manual_seed, or `generator`)."""
    from lepton._generator import using_generator

    if self.ndim not in (1, 2) or not self.is_floating_point():
        raise RuntimeError(f"multinomial(): prob_dist must be a 1 or 2 dim floating-point tensor, got shape "
                           f"{tuple(self.shape)} and {self.dtype}")
    rows = self if self.ndim == 2 else self.unsqueeze(0)
    n_cat = rows.shape[1]
    if not isinstance(num_samples, int) or num_samples <= 0:
        raise RuntimeError(f"multinomial(): cannot sample n_sample <= 0 samples, got {num_samples}")
    if not replacement and num_samples > n_cat:
        raise RuntimeError(f"multinomial(): cannot sample n_sample > prob_dist.size(-1) samples without replacement "
                           f"({num_samples} > {n_cat})")
    with _no_grad():
        w = rows.detach().double()
        if bool((w < 0).any()) or not bool((w == w).all()) or bool((w == math.inf).any()):
            raise RuntimeError("multinomial(): probability tensor contains either `inf`, `nan` or element < 0")
        total = w.sum(1, keepdim=True)
        if bool((total == 0).any()):
            raise RuntimeError("multinomial(): invalid multinomial distribution (sum of probabilities <= 0)")
        with using_generator(generator):
            u = _C.rand(rows.shape[0], num_samples if replacement else n_cat, dtype=_DT.float64,
                       device=self.device)
        if replacement:
            cdf = (w / total).cumsum(1)
            cdf[:, -1] = 1.0  # rounding must not leave the last category unreachable
            # the first category whose cdf exceeds u: count the cdf entries <= u
            idx = (cdf.unsqueeze(1) <= u.unsqueeze(2)).sum(2)
            idx = idx.clamp(max=n_cat - 1)
        else:
            keys = u.log() / w  # -inf for zero weights: never chosen while others remain
            idx = keys.topk(num_samples, 1, True)[1]
    return idx if self.ndim == 2 else idx.squeeze(0)


def _no_grad():
    from lepton.autograd import no_grad

    return no_grad()


# ---- shape and structure -----------------------------------------------------------------------

def _tri(self, diagonal, lower):
    if self.ndim < 2:
        raise RuntimeError(f"{'tril' if lower else 'triu'}: input tensor must have at least 2 dimensions")
    rows, cols = self.shape[-2], self.shape[-1]
    r = _C.arange(0, rows, 1, dtype=_DT.int64, device=self.device).unsqueeze(1)
    c = _C.arange(0, cols, 1, dtype=_DT.int64, device=self.device).unsqueeze(0)
    keep = (c - r <= diagonal) if lower else (c - r >= diagonal)
    return _C.where(keep, self, _C.full([], 0, dtype=self.dtype, device=self.device))


def tril(self, diagonal=0):
    return _tri(self, diagonal, True)


def triu(self, diagonal=0):
    return _tri(self, diagonal, False)


def tril_(self, diagonal=0):
    return _inplace(self, _tri(self, diagonal, True))


def triu_(self, diagonal=0):
    return _inplace(self, _tri(self, diagonal, False))


def repeat(self, *sizes):
    sizes = _sizes(sizes, "repeat")
    if len(sizes) < self.ndim:
        raise RuntimeError(f"repeat(): number of repeat dims ({len(sizes)}) can not be smaller than number of "
                           f"dimensions of tensor ({self.ndim})")
    x = self.reshape(*([1] * (len(sizes) - self.ndim)), *self.shape)
    # [a, b] repeated (r, s): viewed as [1, a, 1, b], expanded to [r, a, s, b], merged pairwise
    pairs = [(r, n) for r, n in zip(sizes, x.shape)]
    x = x.reshape(*[v for _, n in pairs for v in (1, n)])
    x = x.expand(*[v for r, n in pairs for v in (r, n)])
    return x.reshape(*[r * n for r, n in pairs])


def repeat_interleave(self, repeats, dim=None, *, output_size=None):
    x = self.flatten() if dim is None else self
    d = 0 if dim is None else dim % builtins.max(x.ndim, 1)
    n = x.shape[d] if x.ndim else 1
    if isinstance(repeats, Tensor) and repeats.numel() != 1:
        if repeats.ndim != 1 or repeats.numel() != n:
            raise RuntimeError(f"repeat_interleave(): repeats must have the same size as input along dim, got "
                               f"{tuple(repeats.shape)} for size {n}")
        counts = repeats.to(_DT.int64)
    else:
        r = int(repeats.item() if isinstance(repeats, Tensor) else repeats)
        if r < 0:
            raise RuntimeError(f"repeat_interleave(): repeats can not be negative, got {r}")
        counts = _C.full([n], r, dtype=_DT.int64, device=x.device)
    if bool((counts < 0).any()):
        raise RuntimeError("repeat_interleave(): repeats can not be negative")
    index = _repeat_index(counts, x.device)
    return x.index_select(d, index) if x.ndim else x.reshape(1).index_select(0, index)


def _repeat_index(counts, device):
    """[0]*c0 + [1]*c1 + ...: each position's source, from the running sum of counts."""
    total = int(counts.sum().item())
    ends = counts.cumsum(0)
    pos = _C.arange(0, total, 1, dtype=_DT.int64, device=device)
    return (pos.unsqueeze(1) >= ends.unsqueeze(0)).sum(1)


def flip(self, *dims):
    dims = _sizes(dims, "flip")
    x = self
    for d in dims:
        n = x.shape[d]
        x = x.index_select(d, _C.arange(n - 1, -1, -1, dtype=_DT.int64, device=x.device))
    return x


def roll(self, shifts, dims=None):
    if dims is None:
        return roll(self.flatten(), shifts, 0).reshape(*self.shape)
    shifts = (shifts,) if isinstance(shifts, int) else tuple(shifts)
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    if len(shifts) != len(dims):
        raise RuntimeError(f"roll(): shifts and dims must have the same length, got {len(shifts)} and {len(dims)}")
    x = self
    for s, d in zip(shifts, dims):
        n = x.shape[d]
        if n == 0 or s % n == 0:
            continue
        s %= n
        x = _C.cat([x.narrow(d, n - s, s), x.narrow(d, 0, n - s)], d)
    return x


def type_as(self, other):
    return self.to(other.dtype)


def new_tensor(self, data, dtype=None, device=None, requires_grad=False):
    from lepton._creation import tensor

    return tensor(data, dtype=dtype or self.dtype, device=device or self.device, requires_grad=requires_grad)


def _new(fill):
    def method(self, *size, dtype=None, device=None, requires_grad=False, **_layout):
        t = _C.full(list(_sizes(size, fill[0])), fill[1], dtype=dtype or self.dtype,
                   device=device or self.device)
        return t.requires_grad_(requires_grad) if requires_grad else t

    method.__name__ = fill[0]
    return method


new_zeros = _new(("new_zeros", 0))
new_ones = _new(("new_ones", 1))
new_empty = _new(("new_empty", 0))


def new_full(self, size, fill_value, *, dtype=None, device=None, requires_grad=False):
    t = _C.full(list(_sizes((size,), "new_full")), fill_value, dtype=dtype or self.dtype,
               device=device or self.device)
    return t.requires_grad_(requires_grad) if requires_grad else t


# ---- norms and predicates ----------------------------------------------------------------------

def norm(self, p="fro", dim=None, keepdim=False, dtype=None):
    x = self if dtype is None else self.to(dtype)
    dims = () if dim is None else ((dim,) if isinstance(dim, int) else tuple(dim))
    red = {"dim": dims, "keepdim": keepdim} if dims else {}
    if p in ("fro", 2, 2.0):
        return x.square().sum(**red).sqrt() if dims else x.square().sum().sqrt()
    if p == "nuc":
        raise NotImplementedError("norm(p='nuc') needs singular values, which Lepton does not compute")
    if p in (math.inf, "inf"):
        return x.abs().amax(**red) if dims else x.abs().amax()
    if p in (-math.inf, "-inf"):
        return x.abs().amin(**red) if dims else x.abs().amin()
    if p == 0:
        return (x != 0).to(x.dtype).sum(**red) if dims else (x != 0).to(x.dtype).sum()
    if p == 1:
        return x.abs().sum(**red) if dims else x.abs().sum()
    return (x.abs() ** p).sum(**red) ** (1.0 / p) if dims else (x.abs() ** p).sum() ** (1.0 / p)


def isnan(self):
    return self != self


def isinf(self):
    if not self.is_floating_point():
        return _C.full(list(self.shape), False, dtype=_DT.bool, device=self.device)
    return self.abs() == math.inf


def isfinite(self):
    if not self.is_floating_point():
        return _C.full(list(self.shape), True, dtype=_DT.bool, device=self.device)
    return (self == self).logical_and(self.abs() != math.inf)


def nan_to_num(self, nan=0.0, posinf=None, neginf=None):
    if not self.is_floating_point():
        return self.clone()
    big = float(_finfo_max(self.dtype))
    x = _C.where(self != self, _value_tensor(self, nan, "nan_to_num"), self)
    x = _C.where(x == math.inf, _value_tensor(self, big if posinf is None else posinf, "nan_to_num"), x)
    return _C.where(x == -math.inf, _value_tensor(self, -big if neginf is None else neginf, "nan_to_num"), x)


def _finfo_max(dtype):
    return {_DT.float16: 65504.0, _DT.bfloat16: 3.3895313892515355e38, _DT.float32: 3.4028234663852886e38,
            _DT.float64: 1.7976931348623157e308}[dtype]


def allclose(self, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    return bool(isclose(self, other, rtol, atol, equal_nan).all())


def isclose(self, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    a, b = self, other if isinstance(other, Tensor) else _value_tensor(self, other, "isclose")
    if a.dtype != b.dtype:
        raise RuntimeError(f"isclose(): {a.dtype} did not match {b.dtype}")
    if not a.is_floating_point():
        return a == b
    close = (a - b).abs() <= atol + rtol * b.abs()
    close = close.logical_or(a == b)  # equal infinities
    if equal_nan:
        close = close.logical_or((a != a).logical_and(b != b))
    return close


def equal(self, other):
    return tuple(self.shape) == tuple(other.shape) and bool((self == other).all())


def clamp_min(self, min):
    return self.clamp(min=min)


def clamp_max(self, max):
    return self.clamp(max=max)


def softmax(self, dim, dtype=None):
    from lepton.nn import functional as F

    return F.softmax(self, dim, dtype=dtype)


def log_softmax(self, dim, dtype=None):
    from lepton.nn import functional as F

    return F.log_softmax(self, dim, dtype=dtype)


# ---- fused-looking arithmetic that optimizers and hand-written updates call --------------------

def addcmul(self, tensor1, tensor2, *, value=1):
    return self + tensor1 * tensor2 * value


def addcdiv(self, tensor1, tensor2, *, value=1):
    return self + tensor1 / tensor2 * value


def lerp(self, end, weight):
    return self + (end - self) * weight


def addcmul_(self, tensor1, tensor2, *, value=1):
    return self.add_(tensor1 * tensor2 * value)


def addcdiv_(self, tensor1, tensor2, *, value=1):
    return self.add_(tensor1 / tensor2 * value)


def lerp_(self, end, weight):
    return self.add_((end - self) * weight)


def bernoulli(self, p=None, *, generator=None):
    from lepton._generator import using_generator

    with using_generator(generator):
        u = _C.rand(*self.shape, dtype=_DT.float64 if self.dtype == _DT.float64 else _DT.float32,
                    device=self.device)
    return (u < (self if p is None else p)).to(self.dtype)


def bernoulli_(self, p=0.5, *, generator=None):
    probs = p.expand(*self.shape) if isinstance(p, Tensor) else _C.full(list(self.shape), p, dtype=self.dtype,
                                                                        device=self.device)
    return _inplace(self, bernoulli(probs, generator=generator))


# ---- habits of training scripts ----------------------------------------------------------------

def _data_get(self):
    """A tensor sharing self's memory outside autograd: `p.data.add_(...)` updates p untracked."""
    return self.detach()


def _data_set(self, value):
    """`p.data = t` for t of p's shape, dtype and device copies t's values into p (torch rebinds
    p's storage instead; the values seen through p are the same)."""
    if not isinstance(value, Tensor):
        raise TypeError(f"data must be a Tensor, got {type(value).__name__}")
    if tuple(value.shape) != tuple(self.shape) or value.dtype != self.dtype or value.device != self.device:
        raise NotImplementedError(f"assigning .data of shape {tuple(value.shape)} {value.dtype} on {value.device} to a "
                                  f"tensor of shape {tuple(self.shape)} {self.dtype} on {self.device}: Lepton can only "
                                  "replace a tensor's values in place; create a new Parameter instead")
    self.detach().copy_(value)


def __format__(self, spec):
    if self.numel() == 1 and spec:
        return format(self.item(), spec)
    return format(repr(self), spec)


def get_device(self):
    return self.device.index if self.is_cuda else -1


def pin_memory(self, device=None):
    """CPU tensors are returned as they are: Lepton copies host to GPU from ordinary memory."""
    return self


def is_pinned(self, device=None):
    return False


def nelement(self):
    return self.numel()


def ndimension(self):
    return self.dim()


def is_complex(self):
    return False


def retain_grad(self):
    raise NotImplementedError("retain_grad(): Lepton keeps .grad for leaf tensors only; use "
                              "lepton.autograd.grad(loss, [tensor]) to get a non-leaf gradient")


_METHODS = [mm, mv, dot, outer, baddbmm, masked_fill, masked_fill_, masked_select, gather, scatter, scatter_,
            scatter_add, scatter_add_, index_add, index_add_, index_fill, index_fill_, sort, argsort, msort, topk,
            cumsum, cumsum_, multinomial, tril, triu, tril_, triu_, repeat, repeat_interleave, flip, roll, type_as,
            new_tensor, new_zeros, new_ones, new_empty, new_full, norm, isnan, isinf, isfinite, nan_to_num, allclose,
            isclose, equal, clamp_min, clamp_max, softmax, log_softmax, addcmul, addcdiv, lerp, addcmul_, addcdiv_,
            lerp_, bernoulli, bernoulli_, __format__, get_device, pin_memory, is_pinned, nelement, ndimension,
            is_complex, retain_grad]

for _fn in _METHODS:
    setattr(Tensor, _fn.__name__, _fn)
Tensor.data = property(_data_get, _data_set)
# Devices and layouts Lepton does not have: scripts ask before moving to them.
for _name in ("is_xpu", "is_mps", "is_meta", "is_sparse", "is_quantized", "is_mkldnn"):
    setattr(Tensor, _name, property(lambda self: False))
