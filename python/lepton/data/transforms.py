"""Image transforms (torchvision's names) that work on one image and, vectorised with NumPy, on a batch.

Layouts: [H, W] or [C, H, W] is one image, [N, C, H, W] a batch. Inputs are NumPy arrays or
Lepton tensors; each transform returns the kind it was given (ToTensor always returns a tensor).

Random transforms draw their parameters from a NumPy Generator: the `rng` argument when given
(the DataLoader passes one seeded by (seed, epoch, batch), so resumed runs see the same
augmentations), else the transform's own Generator seeded with `seed`. A draw is split into
`get_params(rng, n, size)` (a dict of arrays, one entry per image) and `apply(x, params)` on a
[N, C, H, W] array, so a batch and its images transformed one by one agree given the same draws.
"""

import inspect

import numpy as np

from lepton import _C

__all__ = ["Compose", "ToTensor", "Normalize", "RandomCrop", "RandomHorizontalFlip", "RandomRotation",
           "RandomAffine"]

_SNAP = 1e-6  # source coordinates this close to a pixel centre are taken as exact


def accepts_rng(fn):
    """Whether fn can be called with an rng= keyword."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return "rng" in params or any(p.kind == p.VAR_KEYWORD for p in params.values())


def _to_numpy(x):
    if isinstance(x, _C.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _like(arr, x):
    """arr as the kind of x: a Lepton tensor (on x's device) when x is one, else the array."""
    if not isinstance(x, _C.Tensor):
        return arr
    t = _C.from_numpy(np.ascontiguousarray(arr))
    return t.to(x.device) if x.is_cuda else t


def _pair(v, name):
    if np.isscalar(v):
        return int(v), int(v)
    if len(v) != 2:
        raise ValueError(f"{name} must be an int or a pair, got {v!r}")
    return int(v[0]), int(v[1])


def _range(v, name):
    """A number d -> (-d, d); a pair is taken as (low, high)."""
    if np.isscalar(v):
        if v < 0:
            raise ValueError(f"{name} must be non-negative when a single number, got {v}")
        return -float(v), float(v)
    if len(v) != 2 or v[0] > v[1]:
        raise ValueError(f"{name} must be a number or a pair (low, high) with low <= high, got {v!r}")
    return float(v[0]), float(v[1])


class Compose:
    """Apply transforms in order; `rng` is passed on to each."""

    def __init__(self, transforms):
        self.transforms = list(transforms)
        self._takes_rng = [accepts_rng(t) for t in self.transforms]

    def __call__(self, x, rng=None):
        for t, takes_rng in zip(self.transforms, self._takes_rng):
            x = t(x, rng=rng) if takes_rng else t(x)
        return x

    def __repr__(self):
        return "Compose(" + ", ".join(repr(t) for t in self.transforms) + ")"


class _Transform:
    def __call__(self, x, rng=None):
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}()"


class ToTensor(_Transform):
    """uint8 images -> float32 tensors in [0, 1]: [H,W] -> [1,H,W], [H,W,C] -> [C,H,W], [N,H,W] ->
    [N,1,H,W], [N,H,W,C] -> [N,C,H,W]. A 3-d array is [H,W,C] when its last dimension is 1, 3 or 4
    and [N,H,W] otherwise. Floating-point arrays change layout only (as torchvision); a
    floating-point Lepton tensor is returned as it is."""

    def __call__(self, x, rng=None):
        if isinstance(x, _C.Tensor) and x.is_floating_point():
            return x
        arr = _to_numpy(x)
        if arr.ndim == 2:
            arr = arr[None]
        elif arr.ndim == 3:
            arr = arr.transpose(2, 0, 1) if arr.shape[-1] in (1, 3, 4) else arr[:, None]
        elif arr.ndim == 4 and arr.shape[-1] in (1, 3, 4):
            arr = arr.transpose(0, 3, 1, 2)
        else:
            raise ValueError(f"ToTensor: expected [H,W], [H,W,C], [N,H,W] or [N,H,W,C] with C in 1, 3, 4; "
                             f"got shape {arr.shape}")
        if arr.dtype == np.uint8:
            out = np.divide(arr, np.float32(255), dtype=np.float32)  # x / 255 exactly, as torchvision
        elif arr.dtype.kind == "f":
            out = arr.astype(np.float32)
        else:
            raise TypeError(f"ToTensor: expected uint8 or floating-point images, got {arr.dtype}")
        return _C.from_numpy(np.ascontiguousarray(out))


class Normalize(_Transform):
    """(x - mean[c]) / std[c] per channel of [C,H,W] or [N,C,H,W] (a single value covers all channels)."""

    def __init__(self, mean, std):
        self.mean = np.atleast_1d(np.asarray(mean, dtype=np.float32))
        self.std = np.atleast_1d(np.asarray(std, dtype=np.float32))
        if self.mean.ndim != 1 or self.std.ndim != 1:
            raise ValueError(f"Normalize: mean {self.mean.shape} and std {self.std.shape} must be per-channel vectors")
        if np.any(self.std == 0):
            raise ValueError(f"Normalize: std must be non-zero, got {self.std.tolist()}")

    def __call__(self, x, rng=None):
        if x.ndim not in (3, 4):
            raise ValueError(f"Normalize: expected [C,H,W] or [N,C,H,W], got shape {tuple(x.shape)}")
        c = int(x.shape[-3])
        if self.mean.size not in (1, c) or self.std.size not in (1, c):
            raise ValueError(f"Normalize: {self.mean.size} means and {self.std.size} stds for {c} channels "
                             f"(shape {tuple(x.shape)})")
        mean, std = self.mean[:, None, None], self.std[:, None, None]
        if isinstance(x, _C.Tensor):  # Lepton's own kernels, no round trip through NumPy
            return (x - _like(mean, x)) / _like(std, x)
        return (x - mean) / std

    def __repr__(self):
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"


class _RandomTransform(_Transform):
    """A random transform: get_params(rng, n, (H, W)) -> dict of per-image arrays; apply(x4, params)."""

    def __init__(self, seed):
        self._rng = np.random.default_rng(seed)

    def __call__(self, x, rng=None):
        arr = _to_numpy(x)
        if arr.ndim not in (2, 3, 4):
            raise ValueError(f"{type(self).__name__}: expected [H,W], [C,H,W] or [N,C,H,W], got shape {arr.shape}")
        batch = arr.reshape((1,) * (4 - arr.ndim) + arr.shape)
        out = self.apply(batch, self.get_params(self._rng if rng is None else rng, batch.shape[0], batch.shape[-2:]))
        return _like(out.reshape(arr.shape[:-2] + out.shape[-2:]) if arr.ndim < 4 else out, x)


class RandomCrop(_RandomTransform):
    """Pad each side by `padding` (with `fill`) and crop a random size=(h, w) window."""

    def __init__(self, size, padding=0, fill=0, seed=0):
        super().__init__(seed)
        self.size = _pair(size, "RandomCrop size")
        self.padding, self.fill = int(padding), fill
        if min(self.size) < 1 or self.padding < 0:
            raise ValueError(f"RandomCrop: size {self.size} must be positive and padding {padding} non-negative")

    def get_params(self, rng, n, size):
        (h, w), p = self.size, self.padding
        H, W = size[0] + 2 * p, size[1] + 2 * p
        if h > H or w > W:
            raise ValueError(f"RandomCrop: crop {self.size} is larger than the padded image {(H, W)}")
        return {"top": rng.integers(0, H - h + 1, size=n), "left": rng.integers(0, W - w + 1, size=n)}

    def apply(self, x, params):
        p = self.padding
        if p:
            x = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=self.fill)
        h, w = self.size
        rows = (params["top"][:, None] + np.arange(h))[:, None, :, None]
        cols = (params["left"][:, None] + np.arange(w))[:, None, None, :]
        return x[np.arange(x.shape[0])[:, None, None, None], np.arange(x.shape[1])[None, :, None, None], rows, cols]

    def __repr__(self):
        return f"RandomCrop(size={self.size}, padding={self.padding})"


class RandomHorizontalFlip(_RandomTransform):
    """Mirror left-right with probability p."""

    def __init__(self, p=0.5, seed=0):
        super().__init__(seed)
        if not 0 <= p <= 1:
            raise ValueError(f"RandomHorizontalFlip: p must be in [0, 1], got {p}")
        self.p = float(p)

    def get_params(self, rng, n, size):
        return {"flip": rng.random(n) < self.p}

    def apply(self, x, params):
        return np.where(params["flip"][:, None, None, None], x[..., ::-1], x)

    def __repr__(self):
        return f"RandomHorizontalFlip(p={self.p})"


class RandomAffine(_RandomTransform):
    """Rotate by an angle in `degrees` (counter-clockwise, about the image centre), shift by up to
    translate=(fx, fy) of the width/height (rounded to whole pixels, as torchvision) and scale by a
    factor in scale=(lo, hi). Output pixels are sampled from the input by `interpolation`
    ('nearest', torchvision's default, or 'bilinear'); those from outside it get `fill`.
    Draws per image, in this order: angle, then x and y shifts, then scale."""

    def __init__(self, degrees, translate=None, scale=None, interpolation="nearest", fill=0, seed=0):
        super().__init__(seed)
        self.degrees = _range(degrees, "degrees")
        if translate is not None and (len(translate) != 2 or not all(0 <= t <= 1 for t in translate)):
            raise ValueError(f"RandomAffine: translate must be a pair of fractions in [0, 1], got {translate!r}")
        if scale is not None and (len(scale) != 2 or not 0 < scale[0] <= scale[1]):
            raise ValueError(f"RandomAffine: scale must be a pair 0 < low <= high, got {scale!r}")
        if interpolation not in ("nearest", "bilinear"):
            raise ValueError(f"RandomAffine: interpolation must be 'nearest' or 'bilinear', got {interpolation!r}")
        self.translate, self.scale, self.interpolation, self.fill = translate, scale, interpolation, fill

    def get_params(self, rng, n, size):
        params = {"angle": rng.uniform(*self.degrees, size=n)}
        if self.translate is not None:
            dx, dy = self.translate[0] * size[1], self.translate[1] * size[0]
            params["tx"] = np.round(rng.uniform(-dx, dx, size=n))
            params["ty"] = np.round(rng.uniform(-dy, dy, size=n))
        if self.scale is not None:
            params["scale"] = rng.uniform(*self.scale, size=n)
        return params

    def apply(self, x, params):
        return _warp(x, params["angle"], params.get("tx", 0.0), params.get("ty", 0.0), params.get("scale", 1.0),
                     self.interpolation, self.fill)

    def __repr__(self):
        return (f"{type(self).__name__}(degrees={self.degrees}, translate={self.translate}, scale={self.scale}, "
                f"interpolation='{self.interpolation}')")


class RandomRotation(RandomAffine):
    """Rotate by a random angle in `degrees` (a number d means [-d, d]), counter-clockwise."""

    def __init__(self, degrees, interpolation="nearest", fill=0, seed=0):
        super().__init__(degrees, interpolation=interpolation, fill=fill, seed=seed)


def _warp(x, angle, tx, ty, scale, interpolation, fill):
    """Sample x [N,C,H,W] at the inverse image of each output pixel under rotate-scale-shift."""
    n, c, h, w = x.shape
    cy, cx = (h - 1) / 2, (w - 1) / 2

    def per_image(v):  # [N, 1], broadcast against the [1, H*W] pixel grid
        return np.broadcast_to(np.asarray(v, dtype=np.float64), (n,))[:, None]

    theta = np.deg2rad(per_image(angle))
    cos, sin, scale = np.cos(theta), np.sin(theta), per_image(scale)
    # pixel rows (y) and columns (x) flattened: numpy's inner loops then run over H*W, not W
    ys, xs = (g.reshape(1, h * w).astype(np.float64) for g in np.mgrid[0:h, 0:w])
    dx, dy = xs - cx - per_image(tx), ys - cy - per_image(ty)
    sx = (cos * dx - sin * dy) / scale + cx  # the inverse rotation, on screen axes (y down)
    sy = (sin * dx + cos * dy) / scale + cy
    sx, sy = (np.where(np.abs(s - np.rint(s)) < _SNAP, np.rint(s), s) for s in (sx, sy))
    # a one-pixel border of `fill` around each image: sample points beyond it are clamped onto it
    pw = w + 2
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=fill).ravel()
    base = (np.arange(n)[:, None, None] * c + np.arange(c)[None, :, None]) * ((h + 2) * pw)  # [N,C,1]

    def gather(iy, ix):  # values at integer (iy, ix) [N,H*W], `fill` outside the image
        idx = ((np.clip(iy, -1, h) + 1) * pw + np.clip(ix, -1, w) + 1)[:, None, :]
        return padded.take(base + idx)

    if interpolation == "nearest":
        return gather(np.floor(sy + 0.5).astype(np.int64), np.floor(sx + 0.5).astype(np.int64)).reshape(x.shape)
    x0, y0 = np.floor(sx), np.floor(sy)
    wdtype = x.dtype if x.dtype.kind == "f" else np.float32
    wx, wy = (sx - x0)[:, None].astype(wdtype), (sy - y0)[:, None].astype(wdtype)
    x0, y0 = x0.astype(np.int64), y0.astype(np.int64)
    out = ((1 - wy) * ((1 - wx) * gather(y0, x0) + wx * gather(y0, x0 + 1))
           + wy * ((1 - wx) * gather(y0 + 1, x0) + wx * gather(y0 + 1, x0 + 1)))
    out = out.reshape(x.shape)
    return np.rint(out).astype(x.dtype) if x.dtype.kind in "iub" else out.astype(x.dtype, copy=False)
