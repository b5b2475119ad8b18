"""MnistLSTM: Keras' mnist LSTM example, each 28x28 image read as 28 time steps of 28 pixels."""

from lepton import _C, nn

__all__ = ["MnistLSTM"]


class MnistLSTM(nn.Module):
    """LSTM(hidden) over the image rows, then a Linear from the last hidden state to num_classes logits.
    Input [N, 1, 28, 28] or [N, 28, 28] (any [N, ...] with rows·cols values per sample)."""

    def __init__(self, hidden_size=128, num_classes=10, rows=28, cols=28):
        super().__init__()
        self.rows, self.cols = rows, cols
        self.lstm = nn.LSTM(cols, hidden_size, batch_first=True)
        self.fc = nn.Linear(hidden_size, num_classes)

    def forward(self, x):
        if not isinstance(x, _C.Tensor) or x.dim() < 2 or x.numel() != x.shape[0] * self.rows * self.cols:
            got = f"shape {tuple(x.shape)}" if isinstance(x, _C.Tensor) else type(x).__name__
            raise ValueError(f"MnistLSTM: expected input [N, 1, {self.rows}, {self.cols}] (or [N, {self.rows}, "
                             f"{self.cols}]), got {got}")
        _, (h, _) = self.lstm(x.reshape([x.shape[0], self.rows, self.cols]))
        return self.fc(h[-1])
