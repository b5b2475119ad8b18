"""lepton.onnx.export: each exported file passes onnx.checker and gives Lepton's outputs in
onnxruntime, at the example's batch size and at others (dynamic batch axis)."""

import numpy as np
import pytest

import lepton
from lepton import nn

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from lepton.onnx import export  # noqa: E402  (needs onnx)


def _roundtrip(tmp_path, model, example, others=(), atol=1e-5, **kwargs):
    """Exports, then compares onnxruntime with Lepton on the example and on `others`."""
    path = tmp_path / "model.onnx"
    proto = export(model, example, str(path), **kwargs)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    assert proto.opset_import[0].version == kwargs.get("opset", 17)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    model.eval()
    for x in (example, *others):
        got = session.run(None, {"input": x.numpy()})[0]
        with lepton.no_grad():
            want = model(x).numpy()
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=atol)
    return proto


def test_mlp(tmp_path):
    lepton.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Dropout(0.3), nn.Linear(128, 64),
                          nn.ReLU(), nn.Linear(64, 10))
    others = [lepton.rand(1, 1, 28, 28), lepton.rand(17, 1, 28, 28)]
    proto = _roundtrip(tmp_path, model, lepton.rand(3, 1, 28, 28), others)
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"


def test_cnn_with_batchnorm_and_pools(tmp_path):
    lepton.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(8, 6, 3, stride=2, padding="valid"), nn.Tanh(), nn.AvgPool2d(2, ceil_mode=True),
                          nn.Conv2d(6, 4, 3, padding="same", dilation=2), nn.Sigmoid(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5), nn.LogSoftmax(dim=1))
    model.train()
    model(lepton.randn(8, 1, 14, 14))  # running statistics that are not 0 and 1
    _roundtrip(tmp_path, model, lepton.randn(2, 1, 14, 14), [lepton.randn(5, 1, 14, 14)])


def test_conv_padding_modes_become_pad_nodes(tmp_path):
    lepton.manual_seed(2)
    model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1, padding_mode="reflect"), nn.ReLU(),
                          nn.Conv2d(4, 3, (3, 4), padding="same", padding_mode="replicate"))
    proto = _roundtrip(tmp_path, model, lepton.randn(2, 2, 7, 9), [lepton.randn(1, 2, 7, 9)])
    assert [n.attribute[0].s for n in proto.graph.node if n.op_type == "Pad"] == [b"reflect", b"edge"]
    with pytest.raises(ValueError, match="padding_mode='circular'.* no ONNX opset-17 Pad mode"):
        export(nn.Sequential(nn.Conv2d(2, 2, 3, padding=1, padding_mode="circular")), lepton.randn(1, 2, 5, 5),
               str(tmp_path / "c.onnx"))


def test_recipe_cnns(tmp_path):
    models = pytest.importorskip("lepton.models")
    for cls in (models.MnistCNN, models.FashionCNN):
        lepton.manual_seed(2)
        _roundtrip(tmp_path, cls(), lepton.randn(2, 1, 28, 28), [lepton.randn(3, 1, 28, 28)], atol=1e-4)


@pytest.mark.parametrize("act", [nn.GELU(), nn.GELU(approximate="tanh"), nn.SiLU(), nn.Softmax(dim=-1)])
def test_activations_layernorm(tmp_path, act):
    lepton.manual_seed(3)
    model = nn.Sequential(nn.Linear(6, 12), act, nn.LayerNorm(12), nn.Linear(12, 3), nn.BatchNorm1d(3))
    model.train()
    model(lepton.randn(7, 6))
    _roundtrip(tmp_path, model, lepton.randn(4, 6), [lepton.randn(1, 6)])


def test_embedding_and_dynamic_axes(tmp_path):
    lepton.manual_seed(4)
    model = nn.Sequential(nn.Embedding(11, 5), nn.LayerNorm(5, bias=False), nn.Linear(5, 2))
    idx = lepton.randint(0, 11, (2, 7))
    _roundtrip(tmp_path, model, idx, [lepton.randint(0, 11, (3, 4))], dynamic_axes=[1])


def test_gpt(tmp_path):
    pytest.importorskip("lepton.nn.modules.transformer")
    models = pytest.importorskip("lepton.models")
    lepton.manual_seed(5)
    model = models.CharGPT(vocab_size=13, n_layer=2, n_head=2, n_embd=16, block_size=8)
    idx = lepton.randint(0, 13, (2, 8))
    _roundtrip(tmp_path, model, idx, [lepton.randint(0, 13, (3, 5)), lepton.randint(0, 13, (1, 1))],
               dynamic_axes=[1], atol=1e-4)


def test_errors(tmp_path):
    path = str(tmp_path / "m.onnx")
    with pytest.raises(NotImplementedError, match="no converter for LSTMCell"):
        export(nn.LSTMCell(3, 4), lepton.randn(2, 3), path)
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))
    export(model, lepton.randn(1, 2), path)  # exports the eval-mode function, then restores the mode
    assert model.training and model[1].training
    with pytest.raises(ValueError, match="opset must be at least 17"):
        export(nn.Sequential(nn.Linear(2, 2)), lepton.randn(1, 2), path, opset=13)
    with pytest.raises(TypeError, match="example_input must be a lepton tensor"):
        export(nn.Sequential(nn.Linear(2, 2)), np.zeros((1, 2), np.float32), path)
    with pytest.raises(NotImplementedError, match="Flatten is supported"):
        export(nn.Sequential(nn.Flatten(0, 1)), lepton.randn(2, 3, 4), path)
