"""lepton.vision.models (torchvision.models under `lepton run`): ResNet / ResNeXt / Wide ResNet, VGG,
AlexNet and MobileNetV2 with torchvision's builders, arguments, initialisation and state_dict keys,
built from lepton.nn layers; the weights enums and get_model / list_models registry.

Nothing is downloaded: weights=None (or pretrained=False) builds a randomly initialised model;
asking for trained weights raises, saying how to load a local state_dict converted from torchvision.
"""

import sys
import types

from lepton.vision.models import alexnet as _alexnet_module, mobilenetv2, resnet, vgg
from lepton.vision.models._api import (Weights, WeightsEnum, get_model, get_model_builder, get_model_weights,
                                       get_weight, list_models)
from lepton.vision.models.alexnet import *  # noqa: F401,F403
from lepton.vision.models.mobilenetv2 import *  # noqa: F401,F403
from lepton.vision.models.resnet import *  # noqa: F401,F403
from lepton.vision.models.vgg import *  # noqa: F401,F403

mobilenet = mobilenetv2  # torchvision.models.mobilenet re-exports mobilenetv2 (and v3, which Lepton lacks)

__all__ = ["Weights", "WeightsEnum", "get_model", "get_model_builder", "get_model_weights", "get_weight",
           "list_models", "resnet", "vgg", "mobilenetv2", "mobilenet",
           *_alexnet_module.__all__, *mobilenetv2.__all__, *resnet.__all__, *vgg.__all__]


def __getattr__(name):  # only for names not found: say what there is instead
    raise AttributeError(f"module 'torchvision.models' (lepton.vision.models) has no attribute '{name}'; Lepton "
                         f"builds {', '.join(list_models())}")


class _Package(types.ModuleType):
    """Keeps a builder that shares its submodule's name (`alexnet`) bound to the builder. Under
    `lepton run`, `import torchvision.models.alexnet` loads that name for the first time, and the
    import system then binds the submodule on its package (here, this module); in torchvision the
    package imported it already, so the name keeps the function."""

    def __setattr__(self, name, value):
        if isinstance(value, types.ModuleType) and callable(self.__dict__.get(name)):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
