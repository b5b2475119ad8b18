"""The PIL-image half of lepton.vision.transforms.functional: Pillow does the pixel work, with
torchvision's conventions for sizes ([h, w]), padding and fill values."""

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

__all__ = ["get_dimensions", "hflip", "vflip", "crop", "resize", "pad", "rotate",
           "adjust_brightness", "adjust_contrast", "adjust_saturation", "adjust_hue", "to_grayscale", "parse_fill"]


def _check(img):
    if not isinstance(img, Image.Image):
        raise TypeError(f"img should be PIL Image. Got {type(img)}")


def get_dimensions(img):
    """[channels, height, width]."""
    _check(img)
    return [len(img.getbands()), img.height, img.width]


def hflip(img):
    _check(img)
    return img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)


def vflip(img):
    _check(img)
    return img.transpose(Image.Transpose.FLIP_TOP_BOTTOM)


def crop(img, top, left, height, width):
    """The height x width window at (top, left); parts outside the image are 0."""
    _check(img)
    return img.crop((left, top, left + width, top + height))


def resize(img, size, interpolation):
    """Resize to size = [h, w] with a Pillow resampling filter (Pillow always antialiases)."""
    _check(img)
    return img.resize((size[1], size[0]), interpolation)


def parse_fill(fill, img, name="fill"):
    """{name: fill} in the form Pillow takes for img: one value per band, ints unless mode 'F'."""
    bands = len(img.getbands())
    fill = 0 if fill is None else fill
    if isinstance(fill, (list, tuple)):
        if len(fill) not in (1, bands):
            raise ValueError(f"The number of elements in '{name}' does not match the number of channels of the "
                             f"image ({len(fill)} != {bands})")
        fill = list(fill) * (bands if len(fill) == 1 else 1)
        fill = fill[0] if bands == 1 else fill
    elif bands > 1:
        fill = [fill] * bands
    if img.mode != "F":
        fill = [int(v) for v in fill] if isinstance(fill, list) else int(fill)
    return {name: tuple(fill) if isinstance(fill, list) else fill}


def pad(img, padding, fill=0, padding_mode="constant"):
    """padding = (left, top, right, bottom), negative values crop. 'constant' fills with `fill`;
    'edge', 'reflect' and 'symmetric' are NumPy's pad modes."""
    _check(img)
    left, top, right, bottom = padding
    if padding_mode == "constant":
        out = ImageOps.expand(img, border=(left, top, right, bottom), **parse_fill(fill, img))
    else:
        if min(padding) < 0:  # crop first, then pad what is left
            img = img.crop((max(-left, 0), max(-top, 0), img.width - max(-right, 0), img.height - max(-bottom, 0)))
            left, top, right, bottom = (max(v, 0) for v in padding)
        arr = np.asarray(img)
        widths = ((top, bottom), (left, right)) + ((0, 0),) * (arr.ndim - 2)
        out = Image.fromarray(np.pad(arr, widths, mode=padding_mode))
    if img.mode == "P":
        out.putpalette(img.getpalette())
    return out


def rotate(img, angle, interpolation, expand=False, center=None, fill=0):
    """Rotate counter-clockwise by `angle` degrees about `center` (default the image centre)."""
    _check(img)
    return img.rotate(angle, interpolation, expand, center, **parse_fill(fill, img, name="fillcolor"))


def adjust_brightness(img, factor):
    _check(img)
    return ImageEnhance.Brightness(img).enhance(factor)


def adjust_contrast(img, factor):
    _check(img)
    return ImageEnhance.Contrast(img).enhance(factor)


def adjust_saturation(img, factor):
    _check(img)
    return ImageEnhance.Color(img).enhance(factor)


def adjust_hue(img, factor):
    """Shift the hue (as 0..255 in Pillow's HSV) by factor * 255, wrapping; grey modes are unchanged."""
    _check(img)
    if img.mode in ("L", "1", "I", "F"):
        return img
    h, s, v = img.convert("HSV").split()
    shifted = np.array(h, dtype=np.uint8) + np.array(int(factor * 255), dtype=np.int8).astype(np.uint8)
    return Image.merge("HSV", (Image.fromarray(shifted, "L"), s, v)).convert(img.mode)


def to_grayscale(img, num_output_channels=1):
    """Pillow's 'L' conversion (ITU-R 601-2 luma), repeated over 3 bands when asked."""
    _check(img)
    if num_output_channels not in (1, 3):
        raise ValueError(f"num_output_channels should be either 1 or 3, got {num_output_channels}")
    grey = img.convert("L")
    return grey if num_output_channels == 1 else Image.merge("RGB", (grey, grey, grey))
