"""torchvision.transforms' classes: per-sample transforms of PIL images and Lepton tensors [..., C, H, W].

Randomness: random transforms draw their parameters from Python's `random` module, so
`random.seed(s)` makes a run's augmentations reproducible; inside a DataLoader worker thread
(num_workers > 0) they draw instead from a `random.Random` of that thread seeded with its
WorkerInfo.seed (torch seeds `random` in each worker the same way), which derives from the
loader's seed and thus from `lepton.manual_seed`, so worker threads never interleave draws.
They never draw from Lepton's own generator, whose stream dropout and initialisers use. Drawing
happens in `get_params`, a static method as in torchvision, so the same parameters can be
applied to an image and its mask.
"""

import math
import numbers
import random
import threading
import warnings
from collections.abc import Sequence

from lepton.data import get_worker_info
from lepton.nn import Module
from lepton.vision.transforms import functional as F
from lepton.vision.transforms.functional import InterpolationMode, interpolation_mode

__all__ = ["Compose", "ToTensor", "PILToTensor", "ToPILImage", "ConvertImageDtype", "Normalize", "Lambda",
           "Resize", "CenterCrop", "Pad", "RandomCrop", "RandomHorizontalFlip", "RandomVerticalFlip",
           "RandomRotation", "RandomResizedCrop", "ColorJitter", "Grayscale", "RandomGrayscale", "RandomApply"]


_worker = threading.local()  # this worker thread's WorkerInfo and its random.Random


def _random():
    """Where random draws come from: the `random` module, or this DataLoader worker's own generator."""
    info = get_worker_info()
    if info is None:
        return random
    if getattr(_worker, "info", None) is not info:
        _worker.info, _worker.rng = info, random.Random(info.seed)
    return _worker.rng


def _size(size, name):
    """(h, w) from an int or a sequence of one or two ints."""
    if isinstance(size, numbers.Number):
        return int(size), int(size)
    if isinstance(size, Sequence) and len(size) in (1, 2):
        return int(size[0]), int(size[-1])
    raise ValueError(f"{name}: size must be an int or a sequence (h, w) of two ints, got {size!r}")


def _check_fill(fill):
    if fill is not None and not isinstance(fill, (numbers.Number, Sequence)):
        raise TypeError(f"Fill should be either a sequence or a number, got {fill!r}")
    return 0 if fill is None else fill


class Compose:
    """Apply transforms one after another."""

    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, img):
        for t in self.transforms:
            img = t(img)
        return img

    def __repr__(self):
        return "\n".join([f"{type(self).__name__}("] + [f"    {t}" for t in self.transforms] + [")"])


class ToTensor:
    """PIL image or [H, W(, C)] uint8 ndarray -> float32 tensor [C, H, W] in [0, 1] (see F.to_tensor)."""

    def __call__(self, pic):
        return F.to_tensor(pic)

    def __repr__(self):
        return f"{type(self).__name__}()"


class PILToTensor:
    """PIL image -> tensor [C, H, W] of its values (uint8 for 8-bit modes), not rescaled."""

    def __call__(self, pic):
        return F.pil_to_tensor(pic)

    def __repr__(self):
        return f"{type(self).__name__}()"


class ToPILImage:
    """Tensor [C, H, W] or ndarray [H, W, C] -> PIL image (see F.to_pil_image)."""

    def __init__(self, mode=None):
        self.mode = mode

    def __call__(self, pic):
        return F.to_pil_image(pic, self.mode)

    def __repr__(self):
        return f"{type(self).__name__}()" if self.mode is None else f"{type(self).__name__}(mode={self.mode})"


class ConvertImageDtype(Module):
    """Convert a tensor image to dtype, rescaling its values (integers 0..max, floats [0, 1])."""

    def __init__(self, dtype):
        super().__init__()
        self.dtype = dtype

    def forward(self, image):
        return F.convert_image_dtype(image, self.dtype)

    def extra_repr(self):
        return f"dtype={self.dtype}"


class Normalize(Module):
    """(x - mean[c]) / std[c] per channel of a float tensor image [..., C, H, W]."""

    def __init__(self, mean, std, inplace=False):
        super().__init__()
        self.mean, self.std, self.inplace = mean, std, inplace

    def forward(self, tensor):
        return F.normalize(tensor, self.mean, self.std, self.inplace)

    def __repr__(self):
        return f"{type(self).__name__}(mean={self.mean}, std={self.std})"


class Lambda:
    """Apply a user function."""

    def __init__(self, lambd):
        if not callable(lambd):
            raise TypeError(f"Argument lambd should be callable, got {type(lambd).__name__!r}")
        self.lambd = lambd

    def __call__(self, img):
        return self.lambd(img)

    def __repr__(self):
        return f"{type(self).__name__}()"


class Resize(Module):
    """Resize to size (h, w), or match the shorter side to size when it is an int (the longer side
    keeps the aspect ratio, truncated); PIL's filters for PIL images (bilinear by default)."""

    def __init__(self, size, interpolation=InterpolationMode.BILINEAR, max_size=None, antialias=True):
        super().__init__()
        if isinstance(size, bool) or not isinstance(size, (int, Sequence)):
            raise TypeError(f"Size should be int or sequence. Got {type(size)}")
        if isinstance(size, Sequence) and len(size) not in (1, 2):
            raise ValueError(f"If size is a sequence, it should have 1 or 2 values, got {size!r}")
        self.size, self.max_size, self.antialias = size, max_size, antialias
        self.interpolation = interpolation_mode(interpolation)

    def forward(self, img):
        return F.resize(img, self.size, self.interpolation, self.max_size, self.antialias)

    def __repr__(self):
        return (f"{type(self).__name__}(size={self.size}, interpolation={self.interpolation.value}, "
                f"max_size={self.max_size}, antialias={self.antialias})")


class CenterCrop(Module):
    """The central (h, w) window (padded with 0 when the image is smaller)."""

    def __init__(self, size):
        super().__init__()
        self.size = _size(size, "CenterCrop")

    def forward(self, img):
        return F.center_crop(img, self.size)

    def extra_repr(self):
        return f"size={self.size}"


class Pad(Module):
    """Pad the sides (see F.pad for padding, fill and padding_mode)."""

    def __init__(self, padding, fill=0, padding_mode="constant"):
        super().__init__()
        if isinstance(padding, Sequence) and len(padding) not in (1, 2, 4):
            raise ValueError(f"Padding must be an int or a 1, 2, or 4 element tuple, not a {len(padding)} "
                             "element tuple")
        if padding_mode not in ("constant", "edge", "reflect", "symmetric"):
            raise ValueError(f"Padding mode should be either constant, edge, reflect or symmetric, "
                             f"got {padding_mode!r}")
        self.padding, self.fill, self.padding_mode = padding, fill, padding_mode

    def forward(self, img):
        return F.pad(img, self.padding, self.fill, self.padding_mode)

    def extra_repr(self):
        return f"padding={self.padding}, fill={self.fill}, padding_mode={self.padding_mode}"


class RandomCrop(Module):
    """Crop a random (h, w) window, after padding by `padding` and, with pad_if_needed, padding a
    side that is shorter than the crop."""

    def __init__(self, size, padding=None, pad_if_needed=False, fill=0, padding_mode="constant"):
        super().__init__()
        self.size = _size(size, "RandomCrop")
        self.padding, self.pad_if_needed, self.fill, self.padding_mode = padding, pad_if_needed, fill, padding_mode

    @staticmethod
    def get_params(img, output_size):
        """(top, left, h, w) of a random window of output_size = (h, w)."""
        _, h, w = F.get_dimensions(img)
        th, tw = output_size
        if h < th or w < tw:
            raise ValueError(f"Required crop size {(th, tw)} is larger than input image size {(h, w)}")
        if (h, w) == (th, tw):
            return 0, 0, h, w
        return _random().randint(0, h - th), _random().randint(0, w - tw), th, tw

    def forward(self, img):
        if self.padding is not None:
            img = F.pad(img, self.padding, self.fill, self.padding_mode)
        _, height, width = F.get_dimensions(img)
        if self.pad_if_needed and width < self.size[1]:
            img = F.pad(img, [self.size[1] - width, 0], self.fill, self.padding_mode)
        if self.pad_if_needed and height < self.size[0]:
            img = F.pad(img, [0, self.size[0] - height], self.fill, self.padding_mode)
        return F.crop(img, *self.get_params(img, self.size))

    def extra_repr(self):
        return f"size={self.size}, padding={self.padding}"


class RandomHorizontalFlip(Module):
    """Mirror left-right with probability p."""

    def __init__(self, p=0.5):
        super().__init__()
        self.p = p

    def forward(self, img):
        return F.hflip(img) if _random().random() < self.p else img

    def extra_repr(self):
        return f"p={self.p}"


class RandomVerticalFlip(Module):
    """Mirror top-bottom with probability p."""

    def __init__(self, p=0.5):
        super().__init__()
        self.p = p

    def forward(self, img):
        return F.vflip(img) if _random().random() < self.p else img

    def extra_repr(self):
        return f"p={self.p}"


def _angle_range(degrees):
    if isinstance(degrees, numbers.Number):
        if degrees < 0:
            raise ValueError(f"If degrees is a single number, it must be positive, got {degrees}")
        return [-float(degrees), float(degrees)]
    if not isinstance(degrees, Sequence) or len(degrees) != 2:
        raise ValueError(f"degrees should be a number or a sequence of length 2, got {degrees!r}")
    return [float(d) for d in degrees]


class RandomRotation(Module):
    """Rotate by an angle drawn uniformly from degrees ([-d, d] for a number d), counter-clockwise."""

    def __init__(self, degrees, interpolation=InterpolationMode.NEAREST, expand=False, center=None, fill=0):
        super().__init__()
        self.degrees = _angle_range(degrees)
        if center is not None and (not isinstance(center, Sequence) or len(center) != 2):
            raise ValueError(f"center should be a sequence of length 2, got {center!r}")
        self.interpolation = interpolation_mode(interpolation)
        self.expand, self.center, self.fill = expand, center, _check_fill(fill)

    @staticmethod
    def get_params(degrees):
        return _random().uniform(float(degrees[0]), float(degrees[1]))

    def forward(self, img):
        return F.rotate(img, self.get_params(self.degrees), self.interpolation, self.expand, self.center, self.fill)

    def extra_repr(self):
        return (f"degrees={self.degrees}, interpolation={self.interpolation.value}, expand={self.expand}, "
                f"fill={self.fill}")


class RandomResizedCrop(Module):
    """Crop a random window covering a fraction in `scale` of the area with an aspect ratio (w/h) in
    `ratio` (log-uniform), resized to size; after 10 failed draws, the central crop of the
    nearest admissible ratio."""

    def __init__(self, size, scale=(0.08, 1.0), ratio=(3.0 / 4.0, 4.0 / 3.0),
                 interpolation=InterpolationMode.BILINEAR, antialias=True):
        super().__init__()
        self.size = _size(size, "RandomResizedCrop")
        if not isinstance(scale, Sequence) or len(scale) != 2:
            raise TypeError(f"Scale should be a sequence of two numbers, got {scale!r}")
        if not isinstance(ratio, Sequence) or len(ratio) != 2:
            raise TypeError(f"Ratio should be a sequence of two numbers, got {ratio!r}")
        if scale[0] > scale[1] or ratio[0] > ratio[1]:
            warnings.warn("Scale and ratio should be of kind (min, max)")
        self.scale, self.ratio, self.antialias = scale, ratio, antialias
        self.interpolation = interpolation_mode(interpolation)

    @staticmethod
    def get_params(img, scale, ratio):
        """(top, left, h, w) of the random window."""
        _, height, width = F.get_dimensions(img)
        area = height * width
        log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
        for _ in range(10):
            target_area = area * _random().uniform(scale[0], scale[1])
            aspect = math.exp(_random().uniform(*log_ratio))
            w = int(round(math.sqrt(target_area * aspect)))
            h = int(round(math.sqrt(target_area / aspect)))
            if 0 < w <= width and 0 < h <= height:
                return _random().randint(0, height - h), _random().randint(0, width - w), h, w
        in_ratio = width / height
        if in_ratio < min(ratio):
            w, h = width, int(round(width / min(ratio)))
        elif in_ratio > max(ratio):
            w, h = int(round(height * max(ratio))), height
        else:
            w, h = width, height
        return (height - h) // 2, (width - w) // 2, h, w

    def forward(self, img):
        top, left, h, w = self.get_params(img, self.scale, self.ratio)
        return F.resized_crop(img, top, left, h, w, list(self.size), self.interpolation, antialias=self.antialias)

    def extra_repr(self):
        return (f"size={self.size}, scale={tuple(self.scale)}, ratio={tuple(self.ratio)}, "
                f"interpolation={self.interpolation.value}, antialias={self.antialias}")


def _jitter_range(value, name, center=1.0, bound=(0.0, float("inf")), clip_first_on_zero=True):
    """The factor range for ColorJitter: a number v means [center - v, center + v]; None when it
    would never change the image."""
    if isinstance(value, numbers.Number):
        if value < 0:
            raise ValueError(f"If {name} is a single number, it must be non negative, got {value}")
        value = [center - float(value), center + float(value)]
        if clip_first_on_zero:
            value[0] = max(value[0], 0.0)
    elif isinstance(value, (tuple, list)) and len(value) == 2:
        value = [float(value[0]), float(value[1])]
    else:
        raise TypeError(f"{name} should be a single number or a list/tuple with length 2, got {value!r}")
    if not bound[0] <= value[0] <= value[1] <= bound[1]:
        raise ValueError(f"{name} values should be between {bound}, but got {value}.")
    return None if value[0] == value[1] == center else tuple(value)


class ColorJitter(Module):
    """Change brightness, contrast, saturation and hue by random factors, in a random order."""

    def __init__(self, brightness=0, contrast=0, saturation=0, hue=0):
        super().__init__()
        self.brightness = _jitter_range(brightness, "brightness")
        self.contrast = _jitter_range(contrast, "contrast")
        self.saturation = _jitter_range(saturation, "saturation")
        self.hue = _jitter_range(hue, "hue", center=0.0, bound=(-0.5, 0.5), clip_first_on_zero=False)

    @staticmethod
    def get_params(brightness, contrast, saturation, hue):
        """(order of the four adjustments, then each factor or None), drawn in that order."""
        order = _random().sample(range(4), 4)
        return (order, *(None if r is None else _random().uniform(r[0], r[1])
                         for r in (brightness, contrast, saturation, hue)))

    def forward(self, img):
        order, *factors = self.get_params(self.brightness, self.contrast, self.saturation, self.hue)
        adjust = (F.adjust_brightness, F.adjust_contrast, F.adjust_saturation, F.adjust_hue)
        for k in order:
            if factors[k] is not None:
                img = adjust[k](img, factors[k])
        return img

    def extra_repr(self):
        return f"brightness={self.brightness}, contrast={self.contrast}, saturation={self.saturation}, hue={self.hue}"


class Grayscale(Module):
    """Convert to greyscale with 1 or 3 channels."""

    def __init__(self, num_output_channels=1):
        super().__init__()
        self.num_output_channels = num_output_channels

    def forward(self, img):
        return F.rgb_to_grayscale(img, self.num_output_channels)

    def extra_repr(self):
        return f"num_output_channels={self.num_output_channels}"


class RandomGrayscale(Module):
    """Convert to greyscale with probability p, keeping the number of channels."""

    def __init__(self, p=0.1):
        super().__init__()
        self.p = p

    def forward(self, img):
        if _random().random() < self.p:
            return F.rgb_to_grayscale(img, F.get_image_num_channels(img))
        return img

    def extra_repr(self):
        return f"p={self.p}"


class RandomApply(Module):
    """Apply a list of transforms with probability p (all or none)."""

    def __init__(self, transforms, p=0.5):
        super().__init__()
        self.transforms, self.p = list(transforms), p

    def forward(self, img):
        if self.p < _random().random():
            return img
        for t in self.transforms:
            img = t(img)
        return img

    def __repr__(self):
        return "\n".join([f"{type(self).__name__}(", f"    p={self.p}"] + [f"    {t}" for t in self.transforms] + [")"])
