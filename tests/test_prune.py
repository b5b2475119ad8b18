"""lepton.prune: magnitude pruning (global / per layer) against a numpy ranking, masks that survive
fine-tuning, and channel pruning that shrinks layers while keeping the kept channels' function."""

import numpy as np
import pytest

import lepton
from lepton import nn, prune


def _mlp():
    lepton.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 3))


def _weights(model):
    return [m.weight.detach().numpy().copy() for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


def test_magnitude_global_prunes_the_smallest_overall():
    model = _mlp()
    before = _weights(model)
    s = prune.magnitude(model, 0.6)
    flat = np.concatenate([np.abs(w).ravel() for w in before])
    n = int(round(0.6 * flat.size))
    threshold = np.sort(flat)[n - 1]
    after = _weights(model)
    assert s == pytest.approx(n / flat.size)
    for w0, w1 in zip(before, after):
        np.testing.assert_array_equal(w1 == 0, np.abs(w0) <= threshold)  # no ties in random floats
        np.testing.assert_array_equal(w1[w1 != 0], w0[w1 != 0])
    # layers end up with different sparsities under a global threshold
    per_layer = [float((w == 0).mean()) for w in after]
    assert max(per_layer) - min(per_layer) > 0.05


def test_magnitude_per_layer_and_repeated():
    model = _mlp()
    prune.magnitude(model, 0.5, scope="layer")
    for w in _weights(model):
        assert (w == 0).sum() == int(round(0.5 * w.size))
    prune.magnitude(model, 0.75, scope="layer")  # prunes further, never revives
    for w in _weights(model):
        assert (w == 0).sum() >= int(round(0.75 * w.size))
    assert prune.magnitude(model, 0.0) == pytest.approx(prune.sparsity(model))


def test_fine_tune_keeps_pruned_weights_zero():
    model = _mlp()
    prune.magnitude(model, 0.7)
    zeros = [w == 0 for w in _weights(model)]
    rng = np.random.default_rng(0)
    x = lepton.from_numpy(rng.standard_normal((64, 20)).astype(np.float32))
    y = lepton.from_numpy((rng.standard_normal(64) > 0).astype(np.int64))
    losses = prune.fine_tune(model, [(x, y)] * 10, epochs=3, lr=1e-2)
    assert len(losses) == 3 and losses[-1] < losses[0]
    for z, w in zip(zeros, _weights(model)):
        assert (w[z] == 0).all() and (w[~z] != 0).any()
    prune.remove(model)
    assert all("weight_mask" not in m._buffers for m in model.modules())


def test_magnitude_errors():
    with pytest.raises(ValueError, match=r"amount must be in \[0, 1\]"):
        prune.magnitude(_mlp(), 1.5)
    with pytest.raises(ValueError, match="scope must be 'global' or 'layer'"):
        prune.magnitude(_mlp(), 0.5, scope="row")
    with pytest.raises(ValueError, match="no Linear, Conv2d or recurrent layer"):
        prune.magnitude(nn.Sequential(nn.ReLU()), 0.5)


def test_channels_shrinks_mlp_and_keeps_strongest_units():
    model = _mlp()
    x = lepton.randn(5, 20)
    w1 = model[1].weight.detach().numpy().copy()
    removed = prune.channels(model, 0.5)
    assert removed == {"1": 8, "3": 6}
    assert (model[1].out_features, model[3].in_features, model[3].out_features, model[5].in_features) == (8, 8, 6, 6)
    assert tuple(model[1].weight.shape) == (8, 20) and tuple(model[5].weight.shape) == (3, 6)
    keep = np.sort(np.argsort(-np.linalg.norm(w1, axis=1))[:8])
    np.testing.assert_array_equal(model[1].weight.detach().numpy(), w1[keep])
    with lepton.no_grad():
        assert tuple(model(x).shape) == (5, 3)


def test_channels_zero_channels_change_nothing():
    """Channels whose weights (and bias) are zero contribute nothing: removing them keeps the output."""
    lepton.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(2, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(6, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 2 * 2, 5))
    model.eval()
    with lepton.no_grad():
        for c in (1, 4):  # dead conv channels: after BN they are the constant β - μ·γ/σ, so zero β too
            model[0].weight[c].fill_(0.0)
            model[0].bias[c].fill_(0.0)
            model[1].bias[c].fill_(0.0)
            model[1].running_mean[c].fill_(0.0)
        model[4].weight[2].fill_(0.0)
        model[4].bias[2].fill_(-5.0)  # ReLU makes the channel exactly 0
    x = lepton.randn(3, 2, 8, 8)
    with lepton.no_grad():
        before = model(x).numpy()
    removed = prune.channels(model, 1 / 3)
    assert removed == {"0": 2, "4": 1}
    assert model[1].num_features == 4 and tuple(model[1].running_mean.shape) == (4,)
    assert model[4].in_channels == 4 and model[7].in_features == 3 * 2 * 2
    with lepton.no_grad():
        np.testing.assert_allclose(model(x).numpy(), before, rtol=1e-5, atol=1e-5)


def test_channels_errors():
    with pytest.raises(ValueError, match=r"amount must be in \[0, 1\)"):
        prune.channels(_mlp(), 1.0)
    model = nn.Sequential(nn.Linear(4, 3))  # the output layer is never shrunk
    assert prune.channels(model, 0.5) == {} and model[0].out_features == 3


def test_magnitude_prunes_recurrent_weight_matrices():
    """An LSTM's weight_ih/weight_hh are pruned with the Linear weights, each with its own mask,
    biases untouched; masked fine-tuning keeps them at zero."""
    lepton.manual_seed(4)
    lstm, fc = nn.LSTM(5, 8, num_layers=2, batch_first=True), nn.Linear(8, 3)
    model = nn.Sequential(lstm, fc)
    mats = {n: p.detach().numpy().copy() for n, p in lstm.named_parameters()}
    s = prune.magnitude(model, 0.5, scope="layer")
    assert s == pytest.approx(0.5, abs=1e-3)
    for n, w0 in mats.items():
        w1 = getattr(lstm, n).detach().numpy()
        if n.startswith("weight"):
            mask = getattr(lstm, n + "_mask").numpy()
            assert (w1 == 0).mean() == pytest.approx(0.5, abs=0.01)
            np.testing.assert_array_equal(mask == 0, w1 == 0)
            assert np.abs(w0[w1 == 0]).max() <= np.abs(w0[w1 != 0]).min()
        else:
            np.testing.assert_array_equal(w1, w0)

    class Last(nn.Module):  # the LSTM's last output into fc
        def __init__(self):
            super().__init__()
            self.lstm, self.fc = lstm, fc

        def forward(self, x):
            return self.fc(self.lstm(x)[0][:, -1])

    x, y = lepton.randn(6, 4, 5), lepton.randint(0, 3, (6,))
    prune.fine_tune(Last(), [(x, y)] * 3, lr=1e-2)
    assert prune.sparsity(model) == pytest.approx(s)
    assert (lstm.weight_hh_l1.detach().numpy() == 0).mean() == pytest.approx(0.5, abs=0.01)
    prune.remove(model)
    assert not any(k.endswith("_mask") for k in model.state_dict())
