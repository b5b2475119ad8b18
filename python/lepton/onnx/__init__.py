"""lepton.onnx: export models to ONNX (needs the `onnx` package: pip install onnx).

export(model, example_input, path) converts the model module by module: each supported layer
type has a converter that emits the ONNX nodes of its forward (eval mode), containers chain
their children, and the recipe models (MLP, MnistCNN, FashionCNN, MnistLSTM, CharGPT with its GPT
blocks) are covered, as are nn.RNN/LSTM/GRU (ONNX's RNN, LSTM and GRU ops). The file is checked
with onnx.checker; tests run it in onnxruntime against Lepton.
"""

from lepton.onnx.export import export, register_converter
from lepton.onnx import rnn as _rnn  # noqa: F401  (registers the RNN/LSTM/GRU converters)

__all__ = ["export", "register_converter"]
