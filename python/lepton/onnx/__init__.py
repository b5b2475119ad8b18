"""lepton.onnx: export models to ONNX (needs the `onnx` package: pip install onnx).

export(model, example_input, path) converts the model module by module: each supported layer
type has a converter that emits the ONNX nodes of its forward (eval mode), containers chain
their children, and the recipe models (MLP, MnistCNN, FashionCNN, CharGPT with its GPT blocks)
are covered. The file is checked with onnx.checker; tests run it in onnxruntime against Lepton.
"""

from lepton.onnx.export import export, register_converter

__all__ = ["export", "register_converter"]
