"""Convolutional networks for 28x28 single-channel images (MNIST, Fashion-MNIST)."""

from lepton import nn

__all__ = ["MnistCNN", "FashionCNN"]


class MnistCNN(nn.Sequential):
    """Keras' mnist_cnn example (99.25% after 12 epochs there): conv3x3(32)-ReLU-conv3x3(64)-ReLU-
    maxpool2-dropout(0.25)-fc(128)-ReLU-dropout(0.5)-fc(num_classes). Input [N, 1, 28, 28]."""

    def __init__(self, num_classes=10):
        super().__init__(
            nn.Conv2d(1, 32, 3), nn.ReLU(),
            nn.Conv2d(32, 64, 3), nn.ReLU(),
            nn.MaxPool2d(2), nn.Dropout(0.25),
            nn.Flatten(), nn.Linear(64 * 12 * 12, 128), nn.ReLU(), nn.Dropout(0.5),
            nn.Linear(128, num_classes))


def _conv_bn_relu(cin, cout):
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


class FashionCNN(nn.Sequential):
    """Two VGG-style stages for Fashion-MNIST: (conv3x3-BN-ReLU) x2 and maxpool2 at 32 then 64
    channels, dropout, fc(128)-ReLU-dropout-fc(num_classes). Input [N, 1, 28, 28]."""

    def __init__(self, num_classes=10, dropout=0.3):
        super().__init__(
            *_conv_bn_relu(1, 32), *_conv_bn_relu(32, 32), nn.MaxPool2d(2),
            *_conv_bn_relu(32, 64), *_conv_bn_relu(64, 64), nn.MaxPool2d(2),
            nn.Flatten(), nn.Dropout(dropout), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(128, num_classes))
