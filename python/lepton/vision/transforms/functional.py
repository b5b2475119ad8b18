"""torchvision.transforms.functional: the image operations behind the transforms, each taking a PIL
image (done by Pillow) or a Lepton tensor [..., C, H, W] (done by Lepton's ops on its device), with
torchvision's argument conventions: sizes are [h, w], padding is (left, top, right, bottom)."""

import numbers
from enum import Enum

import numpy as np
from PIL import Image

import lepton
from lepton import Tensor
from lepton.vision.transforms import _functional_pil as F_pil
from lepton.vision.transforms import _functional_tensor as F_t
from lepton.vision.transforms._functional_tensor import convert_image_dtype

__all__ = ["InterpolationMode", "to_tensor", "pil_to_tensor", "to_pil_image", "normalize", "get_dimensions",
           "get_image_size", "get_image_num_channels", "resize", "pad", "crop", "center_crop", "resized_crop",
           "hflip", "vflip", "rotate", "adjust_brightness", "adjust_contrast", "adjust_saturation", "adjust_hue",
           "rgb_to_grayscale", "to_grayscale", "convert_image_dtype"]


class InterpolationMode(Enum):
    NEAREST = "nearest"
    NEAREST_EXACT = "nearest-exact"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"
    BOX = "box"
    HAMMING = "hamming"
    LANCZOS = "lanczos"


_PIL_FILTERS = {InterpolationMode.NEAREST: Image.Resampling.NEAREST,
                InterpolationMode.NEAREST_EXACT: Image.Resampling.NEAREST,
                InterpolationMode.BILINEAR: Image.Resampling.BILINEAR,
                InterpolationMode.BICUBIC: Image.Resampling.BICUBIC,
                InterpolationMode.BOX: Image.Resampling.BOX,
                InterpolationMode.HAMMING: Image.Resampling.HAMMING,
                InterpolationMode.LANCZOS: Image.Resampling.LANCZOS}
_FROM_PIL = {int(Image.Resampling.NEAREST): InterpolationMode.NEAREST,
             int(Image.Resampling.BILINEAR): InterpolationMode.BILINEAR,
             int(Image.Resampling.BICUBIC): InterpolationMode.BICUBIC,
             int(Image.Resampling.BOX): InterpolationMode.BOX,
             int(Image.Resampling.HAMMING): InterpolationMode.HAMMING,
             int(Image.Resampling.LANCZOS): InterpolationMode.LANCZOS}


def interpolation_mode(value):
    """An InterpolationMode from itself or from a Pillow filter constant (as torchvision accepts)."""
    if isinstance(value, InterpolationMode):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and int(value) in _FROM_PIL:
        return _FROM_PIL[int(value)]
    raise TypeError(f"interpolation should be an InterpolationMode or a corresponding Pillow integer constant, "
                    f"got {value!r}")


def _check_image(img):
    if not isinstance(img, (Tensor, Image.Image)):
        raise TypeError(f"img should be PIL Image or Tensor. Got {type(img)}")


def _kernels(img):
    """The PIL or tensor implementation for img."""
    _check_image(img)
    return F_t if isinstance(img, Tensor) else F_pil


# ---- conversions -------------------------------------------------------------------------------

def to_tensor(pic):
    """PIL image or [H, W(, C)] ndarray -> tensor [C, H, W]. uint8 data (and PIL modes other than
    'I' and 'F') become float32 / 255; other arrays keep their dtype and values."""
    if isinstance(pic, np.ndarray):
        if pic.ndim not in (2, 3):
            raise ValueError(f"pic should be 2/3 dimensional. Got {pic.ndim} dimensions.")
        arr = pic[:, :, None] if pic.ndim == 2 else pic
    elif isinstance(pic, Image.Image):
        if pic.mode.startswith("I;16"):
            raise TypeError(f"to_tensor: a PIL image of mode '{pic.mode}' would be int16, which Lepton lacks; "
                            "convert it with img.convert('I') first")
        arr = np.array(pic, dtype={"I": np.int32, "F": np.float32}.get(pic.mode, np.uint8))
        if pic.mode == "1":
            arr *= 255
        arr = arr.reshape(pic.height, pic.width, len(pic.getbands()))
    else:
        raise TypeError(f"pic should be PIL Image or ndarray. Got {type(pic)}")
    chw = np.ascontiguousarray(arr.transpose(2, 0, 1))
    if chw.dtype == np.uint8:
        chw = np.divide(chw, np.float32(255), dtype=np.float32)  # correctly rounded x / 255, as torch's div
    return lepton.from_numpy(chw)


def pil_to_tensor(pic):
    """PIL image -> tensor [C, H, W] of its values, without rescaling (uint8 for 8-bit modes)."""
    if not isinstance(pic, Image.Image):
        raise TypeError(f"pic should be PIL Image. Got {type(pic)}")
    if pic.mode.startswith("I;16"):
        raise TypeError(f"pil_to_tensor: a PIL image of mode '{pic.mode}' would be uint16, which Lepton lacks; "
                        "convert it with img.convert('I') first")
    arr = np.array(pic).reshape(pic.height, pic.width, len(pic.getbands()))
    return lepton.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


_MODES_BY_CHANNELS = {2: ["LA"], 3: ["RGB", "YCbCr", "HSV"], 4: ["RGBA", "CMYK", "RGBX"]}
_ONE_CHANNEL_MODES = {np.dtype(np.uint8): "L", np.dtype(np.int16): "I;16", np.dtype(np.int32): "I",
                      np.dtype(np.float32): "F"}


def to_pil_image(pic, mode=None):
    """Tensor [C, H, W] / [H, W] or ndarray [H, W, C] / [H, W] (C <= 4) -> PIL image. Floating-point
    tensors are scaled by 255 and truncated to uint8 (unless mode is 'F'); the mode is inferred from
    the channels and dtype (L, I, F; LA; RGB; RGBA) unless given."""
    if isinstance(pic, Tensor):
        if pic.ndim not in (2, 3):
            raise ValueError(f"pic should be 2/3 dimensional. Got {pic.ndim} dimensions.")
        pic = pic.detach().unsqueeze(0) if pic.ndim == 2 else pic.detach()
        if pic.shape[0] > 4:
            raise ValueError(f"pic should not have > 4 channels. Got {pic.shape[0]} channels.")
        if pic.is_floating_point() and mode != "F":
            pic = (pic * 255).to(lepton.uint8)
        arr = pic.cpu().numpy().transpose(1, 2, 0)
    elif isinstance(pic, np.ndarray):
        if pic.ndim not in (2, 3):
            raise ValueError(f"pic should be 2/3 dimensional. Got {pic.ndim} dimensions.")
        arr = pic[:, :, None] if pic.ndim == 2 else pic
        if arr.shape[-1] > 4:
            raise ValueError(f"pic should not have > 4 channels. Got {arr.shape[-1]} channels.")
    else:
        raise TypeError(f"pic should be Tensor or ndarray. Got {type(pic)}.")
    channels = arr.shape[-1]
    if channels == 1:
        arr = arr[:, :, 0]
        expected = _ONE_CHANNEL_MODES.get(arr.dtype)
        if mode is not None and mode != expected:
            raise ValueError(f"Incorrect mode ({mode}) supplied for input type {arr.dtype}. Should be {expected}")
        mode = expected
    else:
        if mode is not None and mode not in _MODES_BY_CHANNELS[channels]:
            raise ValueError(f"Only modes {_MODES_BY_CHANNELS[channels]} are supported for {channels}-channel inputs")
        if arr.dtype != np.uint8:
            raise TypeError(f"to_pil_image: {channels}-channel images must be uint8, got {arr.dtype}")
        mode = mode or _MODES_BY_CHANNELS[channels][0]
    if mode is None:
        raise TypeError(f"Input type {arr.dtype} is not supported")
    return Image.frombytes(mode, (arr.shape[1], arr.shape[0]), np.ascontiguousarray(arr).tobytes())


def normalize(tensor, mean, std, inplace=False):
    """(tensor - mean[c]) / std[c] over the channels of a float tensor [..., C, H, W]; mean and std
    are taken in the tensor's dtype."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"img should be Tensor Image. Got {type(tensor)}")
    if not tensor.is_floating_point():
        raise TypeError(f"Input tensor should be a float tensor. Got {tensor.dtype}.")
    if tensor.ndim < 3:
        raise ValueError(f"Expected tensor to be a tensor image of size (..., C, H, W). Got tensor.size() = "
                         f"{tuple(tensor.shape)}")
    mean = lepton.tensor(mean, dtype=tensor.dtype, device=tensor.device)
    std = lepton.tensor(std, dtype=tensor.dtype, device=tensor.device)
    channels = int(tensor.shape[-3])
    if mean.ndim > 1 or std.ndim > 1 or mean.numel() not in (1, channels) or std.numel() not in (1, channels):
        raise ValueError(f"normalize: mean {tuple(mean.shape)} and std {tuple(std.shape)} must hold 1 or {channels} "
                         f"values for an image of shape {tuple(tensor.shape)}")
    if bool((std == 0).any()):
        raise ValueError(f"std evaluated to zero after conversion to {tensor.dtype}, leading to division by zero.")
    mean = mean.reshape(-1, 1, 1) if mean.ndim == 1 else mean
    std = std.reshape(-1, 1, 1) if std.ndim == 1 else std
    return tensor.sub_(mean).div_(std) if inplace else (tensor - mean) / std


# ---- geometry ----------------------------------------------------------------------------------

def get_dimensions(img):
    """[channels, height, width]."""
    return _kernels(img).get_dimensions(img)


def get_image_size(img):
    """[width, height]."""
    _, h, w = get_dimensions(img)
    return [w, h]


def get_image_num_channels(img):
    return get_dimensions(img)[0]


def _resized_output_size(height, width, size, max_size):
    """torchvision's rule: [h, w] as given, or one number for the shorter side (the longer one
    scaled and truncated, then both shrunk if it exceeds max_size)."""
    if len(size) == 2:
        if max_size is not None:
            raise ValueError("max_size should only be passed if size specifies the length of the smaller edge, "
                             f"i.e. size should be an int or a sequence of length 1, got {list(size)}")
        return [int(size[0]), int(size[1])]
    short, long = (width, height) if width <= height else (height, width)
    new_short = int(size[0])
    new_long = int(new_short * long / short)
    if max_size is not None:
        if max_size <= new_short:
            raise ValueError(f"max_size = {max_size} must be strictly greater than the requested size for the "
                             f"smaller edge size = {new_short}")
        if new_long > max_size:
            new_short, new_long = int(max_size * new_short / new_long), max_size
    return [new_long, new_short] if width <= height else [new_short, new_long]


def resize(img, size, interpolation=InterpolationMode.BILINEAR, max_size=None, antialias=True):
    """Resize to size = [h, w], or match the shorter side to size (an int or [s])."""
    interpolation = interpolation_mode(interpolation)
    if isinstance(size, numbers.Integral):
        size = [size]
    if not isinstance(size, (list, tuple)) or len(size) not in (1, 2):
        raise ValueError(f"Size must be an int or a 1 or 2 element tuple/list, got {size!r}")
    _, height, width = get_dimensions(img)
    out = _resized_output_size(height, width, size, max_size)
    if min(out) < 1:
        raise ValueError(f"resize: output size {out} for an image of {[height, width]} has an empty side")
    if out == [height, width]:
        return img
    if isinstance(img, Tensor):
        return F_t.resize(img, out, interpolation.value, antialias)
    return F_pil.resize(img, out, _PIL_FILTERS[interpolation])


_PAD_MODES = ("constant", "edge", "reflect", "symmetric")


def pad(img, padding, fill=0, padding_mode="constant"):
    """Pad by padding: an int (all sides), [left/right, top/bottom] or [left, top, right, bottom];
    negative values crop. padding_mode: constant (fill), edge, reflect or symmetric."""
    if isinstance(padding, bool) or not isinstance(padding, (numbers.Integral, tuple, list)):
        raise TypeError(f"Got inappropriate padding arg: {padding!r}")
    if not isinstance(fill, (numbers.Number, tuple, list)):
        raise TypeError(f"Got inappropriate fill arg: {fill!r}")
    if padding_mode not in _PAD_MODES:
        raise ValueError(f"Padding mode should be either constant, edge, reflect or symmetric, got {padding_mode!r}")
    p = [padding] if isinstance(padding, numbers.Integral) else list(padding)
    if len(p) not in (1, 2, 4) or not all(isinstance(v, numbers.Integral) for v in p):
        raise ValueError(f"Padding must be an int or a 1, 2, or 4 element tuple of ints, got {padding!r}")
    ltrb = [int(v) for v in (p * 4 if len(p) == 1 else p * 2 if len(p) == 2 else p)]
    return _kernels(img).pad(img, ltrb, fill, padding_mode)


def crop(img, top, left, height, width):
    """The height x width window whose top-left corner is (top, left); outside the image is 0."""
    return _kernels(img).crop(img, int(top), int(left), int(height), int(width))


def _size_pair(size, name):
    if isinstance(size, numbers.Number):
        return int(size), int(size)
    if isinstance(size, (list, tuple)) and len(size) in (1, 2):
        return int(size[0]), int(size[-1])
    raise ValueError(f"{name} must be an int or a sequence of one or two ints (h, w), got {size!r}")


def center_crop(img, output_size):
    """The central output_size = (h, w) window; an image smaller than it is padded with 0 first."""
    th, tw = _size_pair(output_size, "center_crop: output_size")
    _, h, w = get_dimensions(img)
    if th > h or tw > w:
        img = pad(img, [max(tw - w, 0) // 2, max(th - h, 0) // 2, max(tw - w + 1, 0) // 2, max(th - h + 1, 0) // 2])
        _, h, w = get_dimensions(img)
        if (th, tw) == (h, w):
            return img
    return crop(img, int(round((h - th) / 2.0)), int(round((w - tw) / 2.0)), th, tw)


def resized_crop(img, top, left, height, width, size, interpolation=InterpolationMode.BILINEAR, antialias=True):
    """crop, then resize to size."""
    return resize(crop(img, top, left, height, width), size, interpolation, antialias=antialias)


def hflip(img):
    return _kernels(img).hflip(img)


def vflip(img):
    return _kernels(img).vflip(img)


def rotate(img, angle, interpolation=InterpolationMode.NEAREST, expand=False, center=None, fill=None):
    """Rotate counter-clockwise by angle degrees. PIL images: about center (x, y) (default the
    centre), enlarged to hold the whole result when expand. Tensors: about the centre, same size."""
    interpolation = interpolation_mode(interpolation)
    if isinstance(img, Tensor):
        if expand or center is not None:
            raise ValueError("rotate: expand and center are implemented for PIL images only in Lepton; convert the "
                             "tensor with to_pil_image first")
        return F_t.rotate(img, float(angle), interpolation.value, fill)
    _check_image(img)
    return F_pil.rotate(img, float(angle), _PIL_FILTERS[interpolation], expand, center, fill)


# ---- colour ------------------------------------------------------------------------------------

def adjust_brightness(img, brightness_factor):
    """Blend with black: 0 gives black, 1 the image, 2 twice as bright (clamped)."""
    return _kernels(img).adjust_brightness(img, brightness_factor)


def adjust_contrast(img, contrast_factor):
    """Blend with the mean grey level: 0 gives a flat grey image, 1 the image."""
    return _kernels(img).adjust_contrast(img, contrast_factor)


def adjust_saturation(img, saturation_factor):
    """Blend with the greyscale image: 0 gives grey, 1 the image, 2 doubled saturation."""
    return _kernels(img).adjust_saturation(img, saturation_factor)


def adjust_hue(img, hue_factor):
    """Shift the hue by hue_factor in [-0.5, 0.5] (a fraction of the colour wheel)."""
    if not -0.5 <= hue_factor <= 0.5:
        raise ValueError(f"hue_factor ({hue_factor}) is not in [-0.5, 0.5].")
    return _kernels(img).adjust_hue(img, hue_factor)


def rgb_to_grayscale(img, num_output_channels=1):
    """Greyscale with 1 or 3 (equal) channels: Pillow's 'L' for PIL images, 0.2989 R + 0.587 G +
    0.114 B for tensors."""
    if isinstance(img, Tensor):
        return F_t.rgb_to_grayscale(img, num_output_channels)
    _check_image(img)
    return F_pil.to_grayscale(img, num_output_channels)


def to_grayscale(img, num_output_channels=1):
    """rgb_to_grayscale for PIL images."""
    if not isinstance(img, Image.Image):
        raise TypeError(f"Input should be PIL Image. Got {type(img)}")
    return F_pil.to_grayscale(img, num_output_channels)
