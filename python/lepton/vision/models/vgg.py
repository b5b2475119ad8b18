"""VGG (Simonyan & Zisserman 2014) in torchvision's form: `features` (3x3 convolutions, optional
BN, ReLU, 2x2 max pools), a 7x7 adaptive average pool and a three-layer `classifier`, so that
state_dict keys (features.0.weight, classifier.6.bias, ...) match torchvision's."""

import lepton
from lepton import nn
from lepton.vision.models._api import builder, imagenet, weights_enum
from lepton.vision.models._init import init_weights as torchvision_init

__all__ = ["VGG", "make_layers", "VGG11_Weights", "VGG11_BN_Weights", "VGG13_Weights", "VGG13_BN_Weights",
           "VGG16_Weights", "VGG16_BN_Weights", "VGG19_Weights", "VGG19_BN_Weights", "vgg11", "vgg11_bn", "vgg13",
           "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn"]

# Output channels of each 3x3 convolution, "M" a 2x2 max pool: configurations A, B, D, E of the paper.
cfgs = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


def make_layers(cfg, batch_norm=False):
    """The `features` Sequential of a configuration (a list as in `cfgs`)."""
    layers, in_channels = [], 3
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        layers.append(nn.Conv2d(in_channels, v, kernel_size=3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(v))
        layers.append(nn.ReLU(inplace=True))
        in_channels = v
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """features -> AdaptiveAvgPool2d(7x7) -> Linear(25088, 4096)-ReLU-Dropout-Linear(4096, 4096)-ReLU-
    Dropout-Linear(4096, num_classes). The pool makes any input of at least 32x32 work."""

    def __init__(self, features, num_classes=1000, init_weights=True, dropout=0.5):
        super().__init__()
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096), nn.ReLU(True), nn.Dropout(p=dropout),
            nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(p=dropout),
            nn.Linear(4096, num_classes))
        if init_weights:
            torchvision_init(self)

    def forward(self, x):
        return self.classifier(lepton.flatten(self.avgpool(self.features(x)), 1))


VGG11_Weights = weights_enum("VGG11_Weights", "vgg11", 132863336, __name__, (32, 32))
VGG11_BN_Weights = weights_enum("VGG11_BN_Weights", "vgg11_bn", 132868840, __name__, (32, 32))
VGG13_Weights = weights_enum("VGG13_Weights", "vgg13", 133047848, __name__, (32, 32))
VGG13_BN_Weights = weights_enum("VGG13_BN_Weights", "vgg13_bn", 133053736, __name__, (32, 32))
# IMAGENET1K_FEATURES: the paper's original weights, for feature extraction (its classifier is not trained)
VGG16_Weights = weights_enum("VGG16_Weights", "vgg16", 138357544, __name__, (32, 32), IMAGENET1K_FEATURES=imagenet(
    "vgg16", 138357544, (32, 32), recipe="features", mean=(0.48235, 0.45882, 0.40784), std=(1 / 255,) * 3))
VGG16_BN_Weights = weights_enum("VGG16_BN_Weights", "vgg16_bn", 138365992, __name__, (32, 32))
VGG19_Weights = weights_enum("VGG19_Weights", "vgg19", 143667240, __name__, (32, 32))
VGG19_BN_Weights = weights_enum("VGG19_BN_Weights", "vgg19_bn", 143678248, __name__, (32, 32))


def _vgg(cfg, batch_norm, kwargs):
    return VGG(make_layers(cfgs[cfg], batch_norm=batch_norm), **kwargs)


@builder(VGG11_Weights)
def vgg11(**kwargs):
    """VGG-11 (configuration A)."""
    return _vgg("A", False, kwargs)


@builder(VGG11_BN_Weights)
def vgg11_bn(**kwargs):
    """VGG-11 with batch normalisation."""
    return _vgg("A", True, kwargs)


@builder(VGG13_Weights)
def vgg13(**kwargs):
    """VGG-13 (configuration B)."""
    return _vgg("B", False, kwargs)


@builder(VGG13_BN_Weights)
def vgg13_bn(**kwargs):
    """VGG-13 with batch normalisation."""
    return _vgg("B", True, kwargs)


@builder(VGG16_Weights)
def vgg16(**kwargs):
    """VGG-16 (configuration D)."""
    return _vgg("D", False, kwargs)


@builder(VGG16_BN_Weights)
def vgg16_bn(**kwargs):
    """VGG-16 with batch normalisation."""
    return _vgg("D", True, kwargs)


@builder(VGG19_Weights)
def vgg19(**kwargs):
    """VGG-19 (configuration E)."""
    return _vgg("E", False, kwargs)


@builder(VGG19_BN_Weights)
def vgg19_bn(**kwargs):
    """VGG-19 with batch normalisation."""
    return _vgg("E", True, kwargs)
