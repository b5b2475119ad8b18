"""quantize_dynamic on recurrent layers (RNN, LSTM, GRU and cells): against a NumPy emulation of
the int8 recurrence (per-row activation and per-output-channel weight quantisation, exactly the
kernels' rule), against the float model, against torch.ao.quantization.quantize_dynamic on the
same weights; save/load; bad inputs."""

import warnings

import numpy as np
import pytest

import lepton
from lepton import nn, quant
from test_quant import _np_int8_linear


def _sigmoid(v):
    return 1 / (1 + np.exp(-v))


def _np_step(mode, x_t, h, c, w_ih, w_hh, b_ih, b_hh):
    """One time step of the int8 recurrence: both products through _np_int8_linear."""
    gi, gh = _np_int8_linear(x_t, w_ih, b_ih), _np_int8_linear(h, w_hh, b_hh)
    if mode == "LSTM":
        i, f, g, o = np.split(gi + gh, 4, axis=1)
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        return _sigmoid(o) * np.tanh(c), c
    if mode == "GRU":
        (xr, xz, xn), (hr, hz, hn) = np.split(gi, 3, axis=1), np.split(gh, 3, axis=1)
        r, z = _sigmoid(xr + hr), _sigmoid(xz + hz)
        n = np.tanh(xn + r * hn)
        return n + z * (h - n), None
    pre = gi + gh
    return (np.tanh(pre) if mode == "RNN_TANH" else np.maximum(pre, 0)), None


def _np_layer_stack(m, x):
    """The int8 emulation of a float RNNBase m on time-major x [T, B, I] from zero state: (output, h_n)."""
    p = {k: v.numpy() for k, v in m.state_dict().items()}
    dirs = 2 if m.bidirectional else 1
    finals = []
    for layer in range(m.num_layers):
        outs = []
        for d in range(dirs):
            s = f"_l{layer}" + ("_reverse" if d else "")
            w = [p.get(k + s) for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            h = np.zeros((x.shape[1], m.hidden_size), np.float32)
            c = np.zeros_like(h)
            y = [None] * len(x)
            for t in (range(len(x) - 1, -1, -1) if d else range(len(x))):
                h, c = _np_step(m.mode, x[t], h, c, *w)
                y[t] = h
            outs.append(np.stack(y))
            finals.append(h)
        x = np.concatenate(outs, 2)
    return x, np.stack(finals)


CONFIGS = [  # (mode class, kwargs, batch, seq)
    (nn.LSTM, {}, 3, 5), (nn.LSTM, {"batch_first": True}, 1, 1),
    (nn.LSTM, {"num_layers": 2, "bidirectional": True}, 4, 7),
    (nn.LSTM, {"bias": False, "batch_first": True, "bidirectional": True}, 2, 3),
    (nn.GRU, {}, 3, 5), (nn.GRU, {"num_layers": 3, "batch_first": True}, 1, 9), (nn.GRU, {"bidirectional": True}, 5, 1),
    (nn.RNN, {}, 2, 6), (nn.RNN, {"nonlinearity": "relu", "num_layers": 2, "bidirectional": True}, 3, 4),
]


@pytest.mark.parametrize("cls,kwargs,batch,seq", CONFIGS)
def test_layers_match_int8_emulation_and_float(cls, kwargs, batch, seq):
    lepton.manual_seed(batch * 10 + seq)
    m = cls(13, 24, **kwargs).eval()
    q = quant.quantize_dynamic(nn.Sequential(m))[0]
    assert type(q) is quant.rnn.QUANTIZED[cls] and isinstance(q, cls)
    x = np.random.default_rng(seq).standard_normal((batch, seq, 13) if m.batch_first else (seq, batch, 13))
    x = x.astype(np.float32)
    with lepton.inference_mode():
        got, got_h = q(lepton.from_numpy(x))[0].numpy(), q(lepton.from_numpy(x))[1]
        want_float = m(lepton.from_numpy(x))[0].numpy()
    got_h = (got_h[0] if cls is nn.LSTM else got_h).numpy()
    emu, emu_h = _np_layer_stack(m, x.transpose(1, 0, 2) if m.batch_first else x)
    if m.batch_first:
        emu = emu.transpose(1, 0, 2)
    assert got.shape == want_float.shape == emu.shape
    np.testing.assert_allclose(got, emu, atol=2e-5)
    np.testing.assert_allclose(got_h, emu_h, atol=2e-5)
    err = np.abs(got - want_float).max()
    assert 0 < err < 0.03, err  # int8 is not float, and close to it


@pytest.mark.parametrize("cls", [nn.LSTMCell, nn.GRUCell, nn.RNNCell])
@pytest.mark.parametrize("batched", [True, False])
def test_cells(cls, batched):
    lepton.manual_seed(3)
    m = cls(11, 16).eval()
    q = quant.quantize_dynamic(nn.Sequential(m))[0]
    assert type(q) is quant.rnn.QUANTIZED[cls]
    rng = np.random.default_rng(4)
    shape = (3, 11) if batched else (11,)
    x = rng.standard_normal(shape).astype(np.float32)
    h = rng.standard_normal(shape[:-1] + (16,)).astype(np.float32) * 0.5
    c = rng.standard_normal(h.shape).astype(np.float32)
    hx = (lepton.from_numpy(h), lepton.from_numpy(c)) if cls is nn.LSTMCell else lepton.from_numpy(h)
    with lepton.inference_mode():
        got, want = q(lepton.from_numpy(x), hx), m(lepton.from_numpy(x), hx)
    got, want = (got[0], want[0]) if cls is nn.LSTMCell else (got, want)
    assert tuple(got.shape) == tuple(want.shape) == h.shape
    mode = {nn.LSTMCell: "LSTM", nn.GRUCell: "GRU", nn.RNNCell: "RNN_TANH"}[cls]
    p = {k: v.numpy() for k, v in m.state_dict().items()}
    emu, _ = _np_step(mode, x.reshape(-1, 11), h.reshape(-1, 16), c.reshape(-1, 16), p["weight_ih"],
                      p["weight_hh"], p["bias_ih"], p["bias_hh"])
    np.testing.assert_allclose(got.numpy(), emu.reshape(h.shape), atol=2e-5)
    assert 0 < np.abs(got.numpy() - want.numpy()).max() < 0.03


@pytest.mark.parametrize("cls", ["LSTM", "GRU"])
def test_at_least_as_accurate_as_torch_ao(cls):
    """Per-channel weights and per-row activations: no further from float than torch's int8 layer."""
    torch = pytest.importorskip("torch")
    lepton.manual_seed(5)
    m = getattr(nn, cls)(20, 64, num_layers=2, bidirectional=True).eval()
    t = getattr(torch.nn, cls)(20, 64, num_layers=2, bidirectional=True).eval()
    t.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in m.state_dict().items()})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tq = torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(t), {type(t)}, dtype=torch.qint8)
    q = quant.quantize_dynamic(nn.Sequential(m))
    x = np.random.default_rng(6).standard_normal((30, 5, 20)).astype(np.float32)
    with lepton.inference_mode(), torch.no_grad():
        ref = m(lepton.from_numpy(x))[0].numpy()
        np.testing.assert_allclose(t(torch.from_numpy(x))[0].numpy(), ref, atol=1e-5)  # same float model
        ours = q(lepton.from_numpy(x))[0].numpy()
        theirs = tq(torch.from_numpy(x))[0].numpy()
    rms = lambda a: float(np.sqrt(np.mean((a - ref) ** 2)))  # noqa: E731
    assert 0 < rms(ours) <= rms(theirs), (rms(ours), rms(theirs))


def test_initial_state_weight_only_and_qconfig_spec():
    lepton.manual_seed(7)
    m = nn.LSTM(6, 8, num_layers=2, batch_first=True).eval()
    x, h0, c0 = lepton.randn(2, 4, 6), lepton.randn(2, 2, 8), lepton.randn(2, 2, 8)
    with lepton.inference_mode():
        want = m(x, (h0, c0))[0].numpy()
        dyn = quant.quantize_dynamic(nn.Sequential(m))[0](x, (h0, c0))[0].numpy()
        wo = quant.quantize_dynamic(nn.Sequential(m), weight_only=True)[0](x, (h0, c0))[0].numpy()
    assert 0 < np.abs(wo - want).max() < np.abs(dyn - want).max() < 0.03  # weight-only: only weight rounding
    skip = quant.quantize_dynamic(nn.Sequential(m, nn.Linear(8, 2)), qconfig_spec={"1"})
    assert type(skip[0]) is nn.LSTM and type(skip[1]) is quant.QuantizedLinear
    # a ReLU after a cell stays a ReLU (only Linear/Conv2d fuse it into the GEMM)
    cell = nn.Sequential(nn.GRUCell(6, 8), nn.ReLU()).eval()
    q = quant.quantize_dynamic(cell)
    assert type(q[1]) is nn.ReLU
    with lepton.inference_mode():
        assert (q(x[:, 0]).numpy() >= 0).all() and (q(x[:, 0]).numpy() == 0).any()


def test_mnist_lstm_save_load(tmp_path):
    from lepton.models import MnistLSTM

    lepton.manual_seed(8)
    model = MnistLSTM(hidden_size=32).eval()
    q = quant.quantize_dynamic(model)
    assert q._quant_config["modules"] == {"lstm": "lstm", "fc": "linear"}
    lepton.save(quant.state_dict(q), str(tmp_path / "q.safetensors"))
    lepton.manual_seed(9)
    back = quant.load(MnistLSTM(hidden_size=32), lepton.load(str(tmp_path / "q.safetensors")))
    x = lepton.randn(3, 1, 28, 28)
    with lepton.inference_mode():
        np.testing.assert_array_equal(back(x).numpy(), q(x).numpy())
        assert np.abs(q(x).numpy() - model(x).numpy()).max() < 0.05
    assert back.lstm.weight_ih_l0.weight.dtype == lepton.int8
    with pytest.raises(ValueError, match="do not match the saved quantised layers"):
        quant.load(nn.Sequential(nn.Linear(3, 3)), lepton.load(str(tmp_path / "q.safetensors")))


def test_bad_inputs():
    q = quant.quantize_dynamic(nn.Sequential(nn.LSTM(5, 7)))[0]
    with lepton.inference_mode():
        with pytest.raises(ValueError, match=r"Expected 5, got input of shape \(3, 2, 4\)"):
            q(lepton.randn(3, 2, 4))
        with pytest.raises(ValueError, match=r"expected h_0 of shape \(1, 2, 7\), got \(1, 3, 7\)"):
            q(lepton.randn(3, 2, 5), (lepton.zeros(1, 3, 7), lepton.zeros(1, 2, 7)))
        with pytest.raises(ValueError, match="sequence length to be larger than 0"):
            q(lepton.randn(0, 2, 5))
    with pytest.raises(TypeError, match="expected an nn.GRU, got LSTM"):
        quant.QuantizedGRU.from_float(nn.LSTM(5, 7))
    with pytest.raises(ValueError, match="wrap a single layer in nn.Sequential"):
        quant.quantize_dynamic(nn.GRU(5, 7))
