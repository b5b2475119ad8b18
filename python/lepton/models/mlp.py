"""The MNIST multilayer perceptron: 784-128-64-10 with ReLU (the model of our source material)."""

from lepton import nn

__all__ = ["MLP"]


class MLP(nn.Sequential):
    """Flatten, then Linear+ReLU for each hidden width, then a Linear to num_classes logits.
    Inputs of any shape [N, ...] with in_features values per sample (e.g. [N, 1, 28, 28])."""

    def __init__(self, in_features=784, hidden=(128, 64), num_classes=10, dropout=0.0):
        widths = [in_features, *hidden]
        layers = [nn.Flatten()]
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()] + ([nn.Dropout(dropout)] if dropout else [])
        layers.append(nn.Linear(widths[-1], num_classes))
        super().__init__(*layers)
