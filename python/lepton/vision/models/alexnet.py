"""AlexNet in torchvision's form (the "one weird trick" variant, Krizhevsky 2014: 64-192-384-256-256
channels, no local response normalisation), with torchvision's state_dict keys. Layers keep
PyTorch's default initialisation, as torchvision's do."""

import lepton
from lepton import nn
from lepton.vision.models._api import builder, weights_enum

__all__ = ["AlexNet", "AlexNet_Weights", "alexnet"]


class AlexNet(nn.Module):
    """Five convolutions with three 3x3/2 max pools, a 6x6 adaptive average pool, then
    Dropout-Linear(9216, 4096)-ReLU-Dropout-Linear(4096, 4096)-ReLU-Linear(4096, num_classes).
    Inputs of at least 63x63."""

    def __init__(self, num_classes=1000, dropout=0.5):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2))
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(inplace=True),
            nn.Dropout(p=dropout), nn.Linear(4096, 4096), nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes))

    def forward(self, x):
        return self.classifier(lepton.flatten(self.avgpool(self.features(x)), 1))


AlexNet_Weights = weights_enum("AlexNet_Weights", "alexnet", 61100840, __name__, (63, 63))


@builder(AlexNet_Weights)
def alexnet(**kwargs):
    """AlexNet."""
    return AlexNet(**kwargs)
