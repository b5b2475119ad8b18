"""End-to-end: a small MLP, CNN, LSTM and Transformer each learn a seeded synthetic task to a stated
held-out accuracy and training loss in a few seconds (Adam, mini-batches drawn with numpy)."""

import numpy as np
import pytest

import lepton
from lepton import nn, optim
from lepton.nn import functional as F


def require(*names):
    """Skips while the layers a model needs are not in lepton.nn yet (they run as soon as they land)."""
    missing = [n for n in names if not hasattr(nn, n) and not hasattr(F, n)]
    if missing:
        pytest.skip(f"lepton.nn lacks {', '.join(missing)}")


def train(model, x, y, steps, lr, batch=64, seed=0, loss_fn=F.cross_entropy):
    """Adam on random mini-batches of (x, y) numpy arrays; returns the mean loss of the last 10 steps."""
    rng = np.random.default_rng(seed)
    opt = optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        i = rng.integers(0, len(x), batch)
        loss = loss_fn(model(lepton.tensor(x[i])), lepton.tensor(y[i]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    return float(np.mean(losses[-10:]))


def accuracy(model, x, y):
    with lepton.no_grad():
        model.eval()
        pred = model(lepton.tensor(x)).argmax(-1).numpy()
    return float((pred == y).mean())


def test_mlp_learns_a_teacher_classifier():
    """4 classes given by argmax of a random linear map of 10-d Gaussian inputs."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((10, 4))
    x = rng.standard_normal((4096, 10)).astype(np.float32)
    y = (x @ w).argmax(1)
    model = nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 4))
    loss = train(model, x[:3072], y[:3072], steps=400, lr=3e-3, batch=128)
    assert loss < 0.1
    assert accuracy(model, x[3072:], y[3072:]) >= 0.95


def bar_images(n, rng, size=12):
    """3 classes of [1, size, size] images: a horizontal bar, a vertical bar or a (wrapped) diagonal at a
    random position, in N(0, 0.3²) noise; every class lights the same number of pixels."""
    y = rng.integers(0, 3, n)
    x = rng.normal(0, 0.3, (n, 1, size, size)).astype(np.float32)
    pos = rng.integers(0, size, n)
    idx = np.arange(size)
    for i in range(n):
        rows, cols = [(pos[i], idx), (idx, pos[i]), (idx, (idx + pos[i]) % size)][y[i]]
        x[i, 0, rows, cols] += 1
    return x, y


def test_cnn_learns_bar_orientation():
    require("Conv2d", "MaxPool2d")
    rng = np.random.default_rng(0)
    x, y = bar_images(1536, rng)
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(16 * 3 * 3, 3))
    loss = train(model, x[:1024], y[:1024], steps=100, lr=1e-2)
    assert loss < 0.1
    assert accuracy(model, x[1024:], y[1024:]) >= 0.97


class SequenceSign(nn.Module):
    """LSTM over [B, T, 1]; a linear head on the last hidden state."""

    def __init__(self):
        super().__init__()
        self.rnn = nn.LSTM(1, 16, batch_first=True)
        self.head = nn.Linear(16, 2)

    def forward(self, x):
        _, (h, _) = self.rnn(x)
        return self.head(h[-1])


def test_lstm_learns_the_sign_of_a_running_sum():
    """Whether the sum of 12 Gaussian steps is positive: the state has to integrate the whole sequence."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1536, 12, 1)).astype(np.float32)
    y = (x.sum((1, 2)) > 0).astype(np.int64)
    model = SequenceSign()
    loss = train(model, x[:1024], y[:1024], steps=250, lr=1e-2)
    assert loss < 0.2
    assert accuracy(model, x[1024:], y[1024:]) >= 0.93


class CopyTransformer(nn.Module):
    """Token + position embeddings, a causal 2-layer pre-norm TransformerEncoder, a vocabulary head."""

    def __init__(self, vocab, length, width=32):
        super().__init__()
        self.emb, self.pos = nn.Embedding(vocab, width), nn.Embedding(length, width)
        layer = nn.TransformerEncoderLayer(width, 4, 2 * width, dropout=0.0, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2)
        self.head = nn.Linear(width, vocab)

    def forward(self, x):
        h = self.emb(x) + self.pos(lepton.arange(x.shape[1]))
        return self.head(self.encoder(h, is_causal=True))


def test_transformer_learns_to_copy():
    """Sequences a, a of 6 random tokens: from the end of the first half on, every next token is a copy of
    the token 6 positions back, which a causal model can only get by attending to it."""
    require("Embedding", "LayerNorm", "MultiheadAttention")
    vocab, half = 10, 6
    rng = np.random.default_rng(0)
    first = rng.integers(1, vocab, (4096, half))
    seq = np.concatenate([first, first], 1)
    x, y = seq[:, :-1], seq[:, 1:]
    model = CopyTransformer(vocab, 2 * half - 1)

    def copy_loss(logits, target):  # only the predictable half
        return F.cross_entropy(logits[:, half - 1:].reshape([-1, vocab]), target[:, half - 1:].reshape([-1]))

    loss = train(model, x[:3072], y[:3072], steps=150, lr=3e-3, loss_fn=copy_loss)
    assert loss < 0.05
    with lepton.no_grad():
        pred = model(lepton.tensor(x[3072:])).argmax(-1).numpy()
    assert (pred[:, half - 1:] == y[3072:, half - 1:]).mean() >= 0.99
