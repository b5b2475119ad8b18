"""The tensor half of lepton.vision.transforms.functional: images are Lepton tensors [..., C, H, W]
(uint8 in 0..255 or floating point in [0, 1]) and every kernel runs on the tensor's device,
except rotation, which goes through lepton.data.transforms' NumPy sampler."""

import numpy as np

import lepton
import lepton.nn.functional as F
from lepton import Tensor
from lepton.data.transforms import RandomRotation as _BatchRotation

__all__ = ["get_dimensions", "hflip", "vflip", "crop", "pad", "resize", "rotate",
           "adjust_brightness", "adjust_contrast", "adjust_saturation", "adjust_hue", "rgb_to_grayscale",
           "convert_image_dtype"]

_MAX_VALUE = {lepton.uint8: 255, lepton.int8: 127, lepton.int32: 2 ** 31 - 1, lepton.int64: 2 ** 63 - 1}


def _check(img):
    if not isinstance(img, Tensor) or img.ndim < 2:
        raise TypeError(f"Tensor is not a torch image: expected a lepton.Tensor [..., H, W], got "
                        f"{type(img).__name__}{tuple(img.shape) if isinstance(img, Tensor) else ''}")


def _check_channels(img, allowed):
    c = get_dimensions(img)[0]
    if c not in allowed:
        raise TypeError(f"Input image tensor permitted channel values are {allowed}, but found {c} "
                        f"(shape {tuple(img.shape)})")


def get_dimensions(img):
    """[channels, height, width] (1 channel for a [H, W] tensor)."""
    _check(img)
    return [1 if img.ndim == 2 else int(img.shape[-3]), int(img.shape[-2]), int(img.shape[-1])]


def _bound(dtype):
    return 1.0 if dtype.is_floating_point else float(_MAX_VALUE[dtype])


def _take(img, dim, indices):
    """img indexed along dim (negative) by a list/array of indices."""
    index = lepton.tensor(np.asarray(indices, dtype=np.int64), device=img.device)
    return img.index_select(img.ndim + dim, index)


def hflip(img):
    _check(img)
    return _take(img, -1, np.arange(img.shape[-1] - 1, -1, -1))


def vflip(img):
    _check(img)
    return _take(img, -2, np.arange(img.shape[-2] - 1, -1, -1))


def crop(img, top, left, height, width):
    """The height x width window at (top, left); parts outside the image are 0."""
    _check(img)
    h, w = img.shape[-2:]
    bottom, right = top + height, left + width
    window = img[..., max(top, 0):max(bottom, 0), max(left, 0):max(right, 0)]
    outside = (max(min(right, 0) - left, 0), max(right - max(w, left), 0),  # (left, right, top, bottom)
               max(min(bottom, 0) - top, 0), max(bottom - max(h, top), 0))
    return F.pad(window, outside, value=0) if any(outside) else window


def _symmetric_indices(n, before, after):
    """Indices that mirror a dimension of size n including its edge (NumPy's 'symmetric')."""
    if before > n or after > n:
        raise ValueError(f"symmetric padding of ({before}, {after}) does not fit a dimension of size {n}")
    return np.concatenate([np.arange(before - 1, -1, -1), np.arange(n), np.arange(n - 1, n - 1 - after, -1)])


def pad(img, padding, fill=0, padding_mode="constant"):
    """padding = (left, top, right, bottom), negative values crop; fill (a number) for 'constant'."""
    _check(img)
    if not isinstance(fill, (int, float)):
        raise TypeError(f"pad: a tensor image takes a single number as fill, got {fill!r}")
    left, top, right, bottom = padding
    if padding_mode == "constant":
        return F.pad(img, (left, right, top, bottom), value=fill)
    if min(padding) < 0:  # crop first, then pad what is left
        img = img[..., max(-top, 0):img.shape[-2] - max(-bottom, 0), max(-left, 0):img.shape[-1] - max(-right, 0)]
        left, top, right, bottom = (max(v, 0) for v in padding)
    if padding_mode == "symmetric":
        rows = _take(img, -2, _symmetric_indices(img.shape[-2], top, bottom))
        return _take(rows, -1, _symmetric_indices(img.shape[-1], left, right))
    mode = "replicate" if padding_mode == "edge" else padding_mode
    with_channels = img.unsqueeze(0) if img.ndim == 2 else img  # F.pad's modes want one more dim
    out = F.pad(with_channels, (left, right, top, bottom), mode=mode)
    return out.squeeze(0) if img.ndim == 2 else out


# ---- resizing ----------------------------------------------------------------------------------

def _triangle(x):
    return np.maximum(1.0 - np.abs(x), 0.0)


def _cubic(a):
    def kernel(x):
        x = np.abs(x)
        near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
        far = (((x - 5.0) * x + 8.0) * x - 4.0) * a
        return np.where(x < 1.0, near, np.where(x < 2.0, far, 0.0))
    return kernel


def _resample_weights(n_in, n_out, mode, antialias):
    """[n_out, n_in] interpolation weights along one axis (half-pixel centres, as torch and Pillow).

    antialias: Pillow's filter, widened by the scale when shrinking and renormalised at the edges
    (torch's antialias=True follows Pillow); else torch's plain 2-tap bilinear / 4-tap bicubic
    (a = -0.75) with indices clamped to the image."""
    scale = n_in / n_out
    out = np.arange(n_out, dtype=np.float64)
    cols = np.arange(n_in, dtype=np.float64)[None, :]
    if antialias:
        kernel, support = (_triangle, 1.0) if mode == "bilinear" else (_cubic(-0.5), 2.0)
        stretch = max(scale, 1.0)
        centre = ((out + 0.5) * scale)[:, None]
        lo = np.maximum((centre - support * stretch + 0.5).astype(np.int64), 0)  # C casts truncate
        hi = np.minimum((centre + support * stretch + 0.5).astype(np.int64), n_in)
        w = np.where((cols >= lo) & (cols < hi), kernel((cols - centre + 0.5) / stretch), 0.0)
        return w / np.where(w.sum(1, keepdims=True) == 0, 1.0, w.sum(1, keepdims=True))
    src = (out + 0.5) * scale - 0.5
    if mode == "bilinear":
        src, kernel, taps = np.maximum(src, 0.0), _triangle, np.arange(0, 2)
    else:
        kernel, taps = _cubic(-0.75), np.arange(-1, 3)
    first = np.floor(src).astype(np.int64)[:, None] + taps[None, :]  # [n_out, taps]
    w = np.zeros((n_out, n_in))
    np.add.at(w, (np.arange(n_out)[:, None], np.clip(first, 0, n_in - 1)), kernel(src[:, None] - first))
    return w


def _nearest_indices(n_in, n_out, exact):
    """torch's nearest (floor(i * in/out)) or nearest-exact (floor((i + 0.5) * in/out)), in float32 as torch."""
    scale = np.float32(n_in) / np.float32(n_out)
    i = np.arange(n_out, dtype=np.float64)
    pos = (np.float32(i + 0.5) * scale) if exact else (np.float32(i) * scale)
    return np.minimum(np.floor(pos).astype(np.int64), n_in - 1)


def resize(img, size, interpolation="bilinear", antialias=True):
    """Resize to size = [h, w]: 'nearest' and 'nearest-exact' pick pixels; 'bilinear' and 'bicubic'
    apply separable weights (two matmuls, in float32 or float64). Integer images are rounded back
    (bicubic clamped to the dtype's range first)."""
    _check(img)
    if interpolation not in ("nearest", "nearest-exact", "bilinear", "bicubic"):
        raise ValueError(f"resize: interpolation '{interpolation}' is available for PIL images only; tensor "
                         "images take nearest, nearest-exact, bilinear or bicubic")
    (h, w), (oh, ow) = img.shape[-2:], size
    if interpolation.startswith("nearest"):
        exact = interpolation == "nearest-exact"
        rows = _take(img, -2, _nearest_indices(h, oh, exact)) if oh != h else img
        return _take(rows, -1, _nearest_indices(w, ow, exact)) if ow != w else rows
    compute = img.dtype if img.dtype in (lepton.float32, lepton.float64) else lepton.float32
    x = img.to(compute)
    if oh != h:
        x = lepton.tensor(_resample_weights(h, oh, interpolation, antialias), dtype=compute, device=img.device) @ x
    if ow != w:
        x = x @ lepton.tensor(_resample_weights(w, ow, interpolation, antialias).T, dtype=compute, device=img.device)
    if img.dtype.is_floating_point:
        return x.to(img.dtype)
    if interpolation == "bicubic":
        x = x.clamp(0, _MAX_VALUE[img.dtype])
    return x.round().to(img.dtype)


def rotate(img, angle, interpolation="nearest", fill=None):
    """Rotate counter-clockwise by `angle` degrees about the image centre ('nearest' or 'bilinear'),
    `fill` (one value, or one per channel) where the rotated image does not reach."""
    _check(img)
    if interpolation not in ("nearest", "bilinear"):
        raise ValueError(f"rotate: tensor images take interpolation nearest or bilinear, got '{interpolation}'")
    c = get_dimensions(img)[0]
    fill = [0.0] if fill is None else [float(fill)] if isinstance(fill, (int, float)) else [float(v) for v in fill]
    fill = fill * c if len(fill) == 1 else fill
    if len(fill) != c:
        raise ValueError(f"rotate: {len(fill)} fill values for an image of {c} channels")
    arr = img.detach().cpu().numpy().reshape(-1, c, *img.shape[-2:])
    angles = {"angle": np.full(arr.shape[0], float(angle))}
    if len(set(fill)) == 1:
        out = _BatchRotation(0, interpolation=interpolation, fill=fill[0]).apply(arr, angles)
    else:
        out = np.concatenate([_BatchRotation(0, interpolation=interpolation, fill=f).apply(arr[:, k:k + 1], angles)
                              for k, f in enumerate(fill)], axis=1)
    return lepton.tensor(out.reshape(tuple(img.shape)), device=img.device)


# ---- colour ------------------------------------------------------------------------------------

def _blend(img1, img2, ratio):
    """ratio * img1 + (1 - ratio) * img2, clamped to the image range, in img1's dtype (truncating)."""
    ratio = float(ratio)
    return (ratio * img1 + (1.0 - ratio) * img2).clamp(0, _bound(img1.dtype)).to(img1.dtype)


def _check_factor(name, factor):
    if factor < 0:
        raise ValueError(f"{name} ({factor}) is not non-negative.")


def rgb_to_grayscale(img, num_output_channels=1):
    """0.2989 R + 0.587 G + 0.114 B (in the image's dtype, truncating); a 1-channel image is copied."""
    if not isinstance(img, Tensor) or img.ndim < 3:
        raise TypeError(f"rgb_to_grayscale: expected a tensor [..., C, H, W], got "
                        f"{tuple(img.shape) if isinstance(img, Tensor) else type(img).__name__}")
    _check_channels(img, [1, 3])
    if num_output_channels not in (1, 3):
        raise ValueError(f"num_output_channels should be either 1 or 3, got {num_output_channels}")
    if img.shape[-3] == 3:
        r, g, b = img.unbind(-3)
        grey = (0.2989 * r + 0.587 * g + 0.114 * b).to(img.dtype).unsqueeze(-3)
    else:
        grey = img.clone()
    if num_output_channels == 1:
        return grey
    return grey.expand(*img.shape[:-3], 3, *img.shape[-2:]).contiguous()


def adjust_brightness(img, factor):
    _check_factor("brightness_factor", factor)
    _check(img)
    _check_channels(img, [1, 3])
    return _blend(img, lepton.zeros_like(img), factor)


def adjust_contrast(img, factor):
    _check_factor("contrast_factor", factor)
    _check(img)
    _check_channels(img, [1, 3])
    dtype = img.dtype if img.dtype.is_floating_point else lepton.float32
    grey = rgb_to_grayscale(img) if get_dimensions(img)[0] == 3 else img
    return _blend(img, grey.to(dtype).mean(dim=(-3, -2, -1), keepdim=True), factor)


def adjust_saturation(img, factor):
    _check_factor("saturation_factor", factor)
    _check(img)
    _check_channels(img, [1, 3])
    if get_dimensions(img)[0] == 1:
        return img
    return _blend(img, rgb_to_grayscale(img), factor)


def _rgb_to_hsv(img):
    r, g, b = img.unbind(-3)
    maxc, minc = img.amax(dim=-3), img.amin(dim=-3)
    grey = maxc == minc
    chroma = maxc - minc
    s = chroma / lepton.where(grey, 1.0, maxc)
    chroma = lepton.where(grey, 1.0, chroma)
    rc, gc, bc = ((maxc - c) / chroma for c in (r, g, b))
    h = lepton.where(maxc == r, bc - gc, lepton.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    return (h / 6.0 + 1.0) % 1.0, s, maxc


def _hsv_to_rgb(h, s, v):
    sector = (h * 6.0).floor()
    f = h * 6.0 - sector
    sector = sector % 6.0
    p = (v * (1.0 - s)).clamp(0.0, 1.0)
    q = (v * (1.0 - s * f)).clamp(0.0, 1.0)
    t = (v * (1.0 - s * (1.0 - f))).clamp(0.0, 1.0)

    def pick(*per_sector):  # the value for each pixel's sector 0..5
        out = per_sector[5]
        for k in range(4, -1, -1):
            out = lepton.where(sector == float(k), per_sector[k], out)
        return out

    return lepton.stack([pick(v, q, p, p, t, v), pick(t, v, v, q, p, p), pick(p, p, t, v, v, q)], dim=-3)


def adjust_hue(img, factor):
    """Rotate the hue by factor (in [-0.5, 0.5]) turns, through HSV in float32; grey images are unchanged."""
    if not -0.5 <= factor <= 0.5:
        raise ValueError(f"hue_factor ({factor}) is not in [-0.5, 0.5].")
    _check(img)
    _check_channels(img, [1, 3])
    if get_dimensions(img)[0] == 1:
        return img
    h, s, v = _rgb_to_hsv(convert_image_dtype(img, lepton.float32))
    return convert_image_dtype(_hsv_to_rgb((h + factor) % 1.0, s, v), img.dtype)


def convert_image_dtype(image, dtype=lepton.float32):
    """Convert an image between dtypes, rescaling values: integers span 0..max, floats [0, 1]."""
    if not isinstance(image, Tensor):
        raise TypeError(f"convert_image_dtype: expected a lepton.Tensor, got {type(image).__name__}")
    if image.dtype == dtype:
        return image
    if image.dtype.is_floating_point:
        if dtype.is_floating_point:
            return image.to(dtype)
        if (image.dtype == lepton.float32 and dtype in (lepton.int32, lepton.int64)) or \
                (image.dtype == lepton.float64 and dtype == lepton.int64):
            raise RuntimeError(f"The cast from {image.dtype} to {dtype} cannot be performed safely.")
        return (image * (_MAX_VALUE[dtype] + 1.0 - 1e-3)).to(dtype)
    if dtype.is_floating_point:
        return image.to(dtype) / _MAX_VALUE[image.dtype]
    in_max, out_max = _MAX_VALUE[image.dtype], _MAX_VALUE[dtype]
    if in_max > out_max:
        return image.floor_divide((in_max + 1) // (out_max + 1)).to(dtype)
    return image.to(dtype) * ((out_max + 1) // (in_max + 1))
