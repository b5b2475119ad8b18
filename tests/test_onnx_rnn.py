"""ONNX export of nn.RNN/LSTM/GRU (ONNX's RNN, LSTM, GRU ops, gates reordered) and of the mnist-lstm
recipe's model: onnxruntime against Lepton on every output, dynamic batch and sequence axes,
odd shapes; `lepton export` of an mnist-lstm checkpoint; what can't be exported says so."""

import numpy as np
import pytest

import lepton
from lepton import nn, quant

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from lepton.onnx import export  # noqa: E402  (needs onnx)


def _leaves(out):
    if isinstance(out, (tuple, list)):
        return [leaf for o in out for leaf in _leaves(o)]
    return [out.numpy()]


def _check(tmp_path, model, example, others=(), **kwargs):
    """Exports model, then runs the file in onnxruntime on example and others against Lepton."""
    path = tmp_path / "rnn.onnx"
    model.eval()
    export(model, example, str(path), **kwargs)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for x in (example, *others):
        got = session.run(None, {"input": x.numpy()})
        with lepton.no_grad():
            want = _leaves(model(x))
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert g.shape == w.shape
            np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)
    return session


CASES = [  # (class, kwargs)
    (nn.LSTM, {}), (nn.LSTM, {"batch_first": True, "num_layers": 2}), (nn.LSTM, {"bidirectional": True, "bias": False}),
    (nn.LSTM, {"batch_first": True, "bidirectional": True, "num_layers": 3}),
    (nn.GRU, {}), (nn.GRU, {"batch_first": True, "bidirectional": True, "num_layers": 2}), (nn.GRU, {"bias": False}),
    (nn.RNN, {"nonlinearity": "relu", "bidirectional": True}), (nn.RNN, {"batch_first": True, "num_layers": 2}),
]


@pytest.mark.parametrize("cls,kwargs", CASES)
def test_recurrent_layers(tmp_path, cls, kwargs):
    lepton.manual_seed(len(kwargs))
    m = cls(7, 12, **kwargs)
    bf = m.batch_first

    def x(batch, seq):
        return lepton.randn(*((batch, seq) if bf else (seq, batch)), 7)

    # batch and sequence axes both symbolic: other batch sizes and lengths, down to 1 and 1
    axes = [0, 1]
    session = _check(tmp_path, m, x(3, 5), [x(1, 1), x(4, 2), x(2, 11)], dynamic_batch=False, dynamic_axes=axes)
    names = [o.name for o in session.get_outputs()]
    assert names == (["output_0", "output_1", "output_2"] if cls is nn.LSTM else ["output_0", "output_1"])


def test_output_names(tmp_path):
    m = nn.GRU(3, 4)
    session = _check(tmp_path, m, lepton.randn(2, 1, 3), output_names=("y", "h_n"), dynamic_batch=False)
    assert [o.name for o in session.get_outputs()] == ["y", "h_n"]


def test_mnist_lstm_model(tmp_path):
    from lepton.models import MnistLSTM

    lepton.manual_seed(1)
    session = _check(tmp_path, MnistLSTM(), lepton.randn(2, 1, 28, 28), [lepton.randn(1, 1, 28, 28),
                                                                          lepton.randn(9, 1, 28, 28)])
    dims = session.get_inputs()[0].shape
    assert dims == ["batch", 1, 28, 28]


def test_export_command_on_mnist_lstm_checkpoint(tmp_path):
    import argparse

    from lepton.serve.cli import add_export_parser
    from lepton.train import recipes, trainer

    config = recipes.make_config("mnist-lstm")
    lepton.manual_seed(2)
    model = recipes.build_model(config).eval()
    path = tmp_path / "checkpoint.safetensors"
    lepton.save({"format": trainer.CHECKPOINT_FORMAT, "model": model.state_dict(), "config": config}, str(path))
    parser = argparse.ArgumentParser()
    add_export_parser(parser.add_subparsers())
    args = parser.parse_args(["export", str(path), str(tmp_path / "m.onnx")])
    assert args.func(args) == 0
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(3).standard_normal((3, 1, 28, 28)).astype(np.float32)
    with lepton.no_grad():
        want = model(lepton.from_numpy(x)).numpy()
    np.testing.assert_allclose(session.run(None, {"input": x})[0], want, rtol=1e-4, atol=1e-5)


def test_unsupported_say_so(tmp_path):
    with pytest.raises(ValueError, match=r"batched input \(3-D, \[T, B, I\]\), got a 2-D example input"):
        export(nn.GRU(4, 6), lepton.randn(5, 4), str(tmp_path / "u.onnx"))
    with pytest.raises(NotImplementedError, match="proj_size has no ONNX equivalent"):
        export(nn.LSTM(4, 6, proj_size=3), lepton.randn(2, 1, 4), str(tmp_path / "p.onnx"))
    q = quant.quantize_dynamic(nn.Sequential(nn.LSTM(4, 6)))
    with pytest.raises(NotImplementedError, match="quantised weights; export the float model"):
        export(q, lepton.randn(2, 1, 4), str(tmp_path / "q.onnx"))
    # the converters reproduce a tuple; a model that post-processes it in Python needs its own converter

    class Last(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.GRU(4, 6)

        def forward(self, x):
            return self.rnn(x)[0][-1]

    with pytest.raises(NotImplementedError, match="no converter for Last"):
        export(Last(), lepton.randn(2, 1, 4), str(tmp_path / "l.onnx"))
