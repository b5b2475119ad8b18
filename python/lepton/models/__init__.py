"""Ready-made models."""

from lepton.models.cnn import FashionCNN, MnistCNN  # noqa: F401
from lepton.models.gpt import CharGPT  # noqa: F401
from lepton.models.lstm import MnistLSTM  # noqa: F401
from lepton.models.mlp import MLP  # noqa: F401
