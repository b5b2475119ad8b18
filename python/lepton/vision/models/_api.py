"""torchvision.models' weights and registry API: Weights / WeightsEnum, the ImageNet eval preset,
register_model, get_model, get_model_weights, get_weight, list_models.

Lepton never downloads. The weights enums exist so that torchvision scripts import and can name
them (and use their `transforms()` presets), but asking a builder for pretrained weights raises,
saying how to load a local state_dict instead: random weights in place of trained ones would be a
silent wrong answer.
"""

import enum
import fnmatch
import functools
import inspect
import sys
import warnings
from typing import Any, Callable, NamedTuple

import lepton
from lepton import nn
from lepton.vision.transforms import functional as TF

__all__ = ["Weights", "WeightsEnum", "weights_enum", "ImageClassification", "register_model", "get_model",
           "get_model_builder", "get_model_weights", "get_weight", "list_models"]


class ImageClassification(nn.Module):
    """The ImageNet eval preset of torchvision's weights: resize the shorter side to resize_size,
    center-crop crop_size, scale to float [0, 1], normalise by the ImageNet mean / std.
    Takes a PIL image or a uint8 / float tensor [..., C, H, W]."""

    def __init__(self, *, crop_size, resize_size=256, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
                 interpolation=TF.InterpolationMode.BILINEAR, antialias=True):
        super().__init__()
        self.crop_size, self.resize_size = [crop_size], [resize_size]
        self.mean, self.std = list(mean), list(std)
        self.interpolation, self.antialias = interpolation, antialias

    def forward(self, img):
        img = TF.resize(img, self.resize_size, interpolation=self.interpolation, antialias=self.antialias)
        img = TF.center_crop(img, self.crop_size)
        if not isinstance(img, lepton.Tensor):
            img = TF.pil_to_tensor(img)
        img = TF.convert_image_dtype(img, lepton.float32)
        return TF.normalize(img, mean=self.mean, std=self.std)

    def extra_repr(self):
        return (f"crop_size={self.crop_size}, resize_size={self.resize_size}, mean={self.mean}, std={self.std}, "
                f"interpolation={self.interpolation}")


class Weights(NamedTuple):
    """What torchvision records for a set of trained weights; `url` is None here (nothing is downloaded)."""
    url: str | None
    transforms: Callable
    meta: dict[str, Any]


def _no_download_message(what, builder, weights):
    return (f"{what}: Lepton never downloads weights. Build the model with weights=None and load a local "
            f"state_dict instead:\n"
            f"    model = torchvision.models.{builder}(weights=None)  # lepton.vision.models.{builder}\n"
            f"    model.load_state_dict(torch.load('{builder}.safetensors'))  # lepton.load outside `lepton run`\n"
            f"making the file once where the real torch and torchvision are installed:\n"
            f"    safetensors.torch.save_file(torchvision.models.{builder}(weights='{weights.name}').state_dict(), "
            f"'{builder}.safetensors')")


class WeightsEnum(enum.Enum):
    """Base of ResNet18_Weights and the rest: members name the trained weights torchvision offers
    (DEFAULT is an alias of the recommended one)."""

    @classmethod
    def verify(cls, obj):
        """None, a member of this enum, or its name ("DEFAULT", "ResNet18_Weights.DEFAULT") -> a member."""
        if obj is None or isinstance(obj, cls):
            return obj
        if isinstance(obj, str):
            try:
                return cls[obj.replace(cls.__name__ + ".", "", 1)]
            except KeyError:
                raise ValueError(f"Failed to find Weights {obj} in {cls.__name__}; it has "
                                 f"{', '.join(cls.__members__)}") from None
        raise TypeError(f"Invalid Weight class provided; expected {cls.__name__} but received {type(obj).__name__}.")

    def get_state_dict(self, *args, **kwargs):
        raise RuntimeError(_no_download_message(f"{self}.get_state_dict()", self.meta["_builder"], self))

    def __repr__(self):
        return f"{type(self).__name__}.{self.name}"

    @property
    def url(self):
        return self.value.url

    @property
    def transforms(self):
        return self.value.transforms

    @property
    def meta(self):
        return self.value.meta


def imagenet(builder, num_params, min_size=(1, 1), resize_size=256, recipe="v1", **preset):
    """Weights of an ImageNet classifier; meta["_builder"] names the builder (for error messages) and
    "_recipe" the training recipe (which keeps members that share everything else distinct)."""
    return Weights(None, functools.partial(ImageClassification, crop_size=224, resize_size=resize_size, **preset),
                   {"num_params": num_params, "min_size": min_size, "_builder": builder, "_recipe": recipe})


def weights_enum(name, builder, num_params, module, min_size=(1, 1), v2=False, **extra):
    """A model's weights enum: IMAGENET1K_V1, IMAGENET1K_V2 where torchvision retrained the model with
    its 2021 recipe (evaluated at resize 232), `extra` members, and DEFAULT, an alias of the newest."""
    members = {"IMAGENET1K_V1": imagenet(builder, num_params, min_size)}
    if v2:
        members["IMAGENET1K_V2"] = imagenet(builder, num_params, min_size, resize_size=232, recipe="v2")
    members.update(extra)
    members["DEFAULT"] = members["IMAGENET1K_V2" if v2 else "IMAGENET1K_V1"]
    return WeightsEnum(name, members, module=module)


def resolve_weights(builder, weights_class, weights, pretrained):
    """The builder's weights argument after torchvision's legacy `pretrained=` (True means
    IMAGENET1K_V1, as in torchvision); raises unless it comes to None."""
    if pretrained is not None:
        warnings.warn(f"{builder}: the parameter 'pretrained' is deprecated, please use 'weights' instead.",
                      UserWarning, stacklevel=3)
        if weights is None and pretrained:
            weights = weights_class.IMAGENET1K_V1
    weights = weights_class.verify(weights)
    if weights is not None:
        raise RuntimeError(_no_download_message(f"{builder}(weights={weights})", builder, weights))


# ---- registry ----------------------------------------------------------------------------------

BUILTIN_MODELS = {}


def register_model(name=None):
    """Decorator adding a builder to list_models / get_model under `name` (default: its own name)."""
    def wrapper(fn):
        key = name if name is not None else fn.__name__
        if key in BUILTIN_MODELS:
            raise ValueError(f"An entry is already registered under the name '{key}'.")
        BUILTIN_MODELS[key] = fn
        return fn
    return wrapper


def list_models(module=None, include=None, exclude=None):
    """Sorted names of the registered models, optionally only those defined in `module` and
    filtered by Unix-shell patterns (a string or a list of them) to include and exclude."""
    names = [k for k, fn in BUILTIN_MODELS.items()
             if module is None or fn.__module__.rsplit(".", 1)[-1] == module.__name__.rsplit(".", 1)[-1]]
    if include:
        include = [include] if isinstance(include, str) else include
        names = [n for n in names if any(fnmatch.fnmatch(n, p) for p in include)]
    if exclude:
        exclude = [exclude] if isinstance(exclude, str) else exclude
        names = [n for n in names if not any(fnmatch.fnmatch(n, p) for p in exclude)]
    return sorted(names)


def get_model_builder(name):
    name = name.lower()
    try:
        return BUILTIN_MODELS[name]
    except KeyError:
        raise ValueError(f"Unknown model {name}; Lepton has {', '.join(sorted(BUILTIN_MODELS))}") from None


def get_model(name, **config):
    """The model `name` built with `config` (weights=None, num_classes=..., ...)."""
    return get_model_builder(name)(**config)


def get_model_weights(name):
    """The weights enum class of a model, given its name or its builder."""
    fn = get_model_builder(name) if isinstance(name, str) else name
    annotation = inspect.signature(fn).parameters["weights"].annotation
    if not (isinstance(annotation, type) and issubclass(annotation, WeightsEnum)):
        raise ValueError(f"The weight enum for {fn.__name__} could not be found")
    return annotation


def get_weight(name):
    """A weights member from its full name, e.g. "ResNet50_Weights.IMAGENET1K_V2"."""
    try:
        class_name, member = name.split(".")
    except ValueError:
        raise ValueError(f"Invalid weight name provided: '{name}'.") from None
    for fn in BUILTIN_MODELS.values():
        cls = getattr(sys.modules[fn.__module__], class_name, None)
        if isinstance(cls, type) and issubclass(cls, WeightsEnum):
            return cls.verify(member)
    raise ValueError(f"The weight enum '{class_name}' for the specific method couldn't be retrieved.")


def builder(weights_class):
    """Makes a model builder (weights=None, progress=True, **kwargs): registers it, and resolves
    `weights` / legacy `pretrained` (either may come positionally, as torchvision allows) before
    calling it, so that a request for trained weights raises."""
    def wrapper(fn):
        @functools.wraps(fn)
        def build(*args, weights=None, progress=True, pretrained=None, **kwargs):
            if len(args) > 1:
                raise TypeError(f"{fn.__name__}() takes keyword arguments only (weights=None, progress=True, ...)")
            if args and isinstance(args[0], bool):  # torchvision < 0.13: resnet18(pretrained, progress)
                pretrained = args[0]
            elif args:
                weights = args[0]
            resolve_weights(fn.__name__, weights_class, weights, pretrained)
            return fn(**kwargs)
        build.__signature__ = inspect.Signature([
            inspect.Parameter("weights", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=weights_class),
            inspect.Parameter("progress", inspect.Parameter.KEYWORD_ONLY, default=True),
            inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD)])
        return register_model()(build)
    return wrapper
