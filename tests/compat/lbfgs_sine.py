"""Sequence prediction in the style of pytorch/examples' time_sequence_prediction: sine waves
saved with torch.save as a NumPy array and loaded back, a double-precision model of two LSTMCells
unrolled by hand with chunk/stack, trained by LBFGS with a closure. Prints 'final loss X'."""
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim

T, L, N = 20, 120, 24
np.random.seed(2)
x = np.empty((N, L), "int64")
x[:] = np.array(range(L)) + np.random.randint(-4 * T, 4 * T, N).reshape(N, 1)
path = os.path.join(sys.argv[1] if len(sys.argv) > 1 else ".", "traindata.pt")
torch.save(np.sin(x / 1.0 / T).astype("float64"), open(path, "wb"))


class Sequence(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm1 = nn.LSTMCell(1, 24)
        self.lstm2 = nn.LSTMCell(24, 24)
        self.linear = nn.Linear(24, 1)

    def forward(self, input, future=0):
        outputs = []
        h_t = torch.zeros(input.size(0), 24, dtype=torch.double)
        c_t = torch.zeros(input.size(0), 24, dtype=torch.double)
        h_t2 = torch.zeros(input.size(0), 24, dtype=torch.double)
        c_t2 = torch.zeros(input.size(0), 24, dtype=torch.double)
        for input_t in input.split(1, dim=1):
            h_t, c_t = self.lstm1(input_t, (h_t, c_t))
            h_t2, c_t2 = self.lstm2(h_t, (h_t2, c_t2))
            output = self.linear(h_t2)
            outputs += [output]
        for _ in range(future):
            h_t, c_t = self.lstm1(output, (h_t, c_t))
            h_t2, c_t2 = self.lstm2(h_t, (h_t2, c_t2))
            output = self.linear(h_t2)
            outputs += [output]
        return torch.cat(outputs, dim=1)


data = torch.load(open(path, "rb"), weights_only=False)
assert isinstance(data, np.ndarray) and data.dtype == np.float64
torch.manual_seed(0)
input, target = torch.from_numpy(data[3:, :-1]), torch.from_numpy(data[3:, 1:])
test_input, test_target = torch.from_numpy(data[:3, :-1]), torch.from_numpy(data[:3, 1:])
seq = Sequence().double()
criterion = nn.MSELoss()
optimizer = optim.LBFGS(seq.parameters(), lr=0.8, max_iter=12)
for i in range(4):
    def closure():
        optimizer.zero_grad()
        loss = criterion(seq(input), target)
        print("loss:", loss.item())
        loss.backward()
        return loss
    optimizer.step(closure)
    with torch.no_grad():
        pred = seq(test_input, future=20)
        loss = criterion(pred[:, :-20], test_target)
        print("step", i, "test loss:", loss.item())
print(f"final loss {loss.item():.6f} predicted {pred.detach().numpy().shape}")
