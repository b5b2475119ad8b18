"""Dropout, and the channel-wise Dropout1d / Dropout2d / Dropout3d."""

from lepton.nn import functional as F
from lepton.nn.modules.module import Module


class Dropout(Module):
    """Zeroes elements with probability p in training mode (scaling the rest by 1/(1-p)); identity in eval."""

    _fn = F.dropout

    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p, self.inplace = p, inplace

    def forward(self, input):
        return type(self)._fn(input, self.p, self.training, self.inplace)

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"


class Dropout1d(Dropout):
    """Zeroes whole channels of [N, C, L] (or [C, L]) input."""

    _fn = F.dropout1d


class Dropout2d(Dropout):
    """Zeroes whole channels of [N, C, H, W] input."""

    _fn = F.dropout2d


class Dropout3d(Dropout):
    """Zeroes whole channels of [N, C, D, H, W] (or [C, D, H, W]) input."""

    _fn = F.dropout3d
