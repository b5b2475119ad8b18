"""A variational autoencoder in the style of pytorch/examples' vae/main.py: torchvision MNIST with
ToTensor, a 784-400-20 encoder giving mu and logvar, the reparameterisation trick with randn_like,
binary cross-entropy summed plus the KL term, Adam, evaluation under no_grad, and reconstructions
and samples written with torchvision.utils.save_image. Prints 'train loss X' and 'test loss X'
(per image) and the files it wrote."""
import argparse
import os

import torch
import torch.nn.functional as F
from torch import nn, optim
from torchvision import datasets, transforms
from torchvision.utils import save_image

parser = argparse.ArgumentParser()
parser.add_argument("--batches", type=int, default=120)
parser.add_argument("--out", default="results")
args = parser.parse_args()
torch.manual_seed(1)
os.makedirs(args.out, exist_ok=True)

train_loader = torch.utils.data.DataLoader(
    datasets.MNIST("../data", train=True, download=True, transform=transforms.ToTensor()), batch_size=128,
    shuffle=True)
test_loader = torch.utils.data.DataLoader(
    datasets.MNIST("../data", train=False, transform=transforms.ToTensor()), batch_size=128, shuffle=False)


class VAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 400)
        self.fc21, self.fc22 = nn.Linear(400, 20), nn.Linear(400, 20)
        self.fc3, self.fc4 = nn.Linear(20, 400), nn.Linear(400, 784)

    def encode(self, x):
        h1 = F.relu(self.fc1(x))
        return self.fc21(h1), self.fc22(h1)

    def reparameterize(self, mu, logvar):
        std = torch.exp(0.5 * logvar)
        return mu + torch.randn_like(std) * std

    def decode(self, z):
        return torch.sigmoid(self.fc4(F.relu(self.fc3(z))))

    def forward(self, x):
        mu, logvar = self.encode(x.view(-1, 784))
        return self.decode(self.reparameterize(mu, logvar)), mu, logvar


def loss_function(recon_x, x, mu, logvar):
    bce = F.binary_cross_entropy(recon_x, x.view(-1, 784), reduction="sum")
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return bce + kld


model = VAE()
optimizer = optim.Adam(model.parameters(), lr=1e-3)
model.train()
seen, total = 0, 0.0
for batch_idx, (data, _) in enumerate(train_loader):
    if batch_idx == args.batches:
        break
    optimizer.zero_grad()
    recon, mu, logvar = model(data)
    loss = loss_function(recon, data, mu, logvar)
    loss.backward()
    optimizer.step()
    if batch_idx >= args.batches - 20:  # the loss late in training, per image
        seen, total = seen + len(data), total + loss.item()
    if batch_idx % 40 == 0:
        print(f"batch {batch_idx} loss {loss.item() / len(data):.2f}")
print(f"train loss {total / seen:.2f}")

model.eval()
test_loss, count = 0.0, 0
with torch.no_grad():
    for i, (data, _) in enumerate(test_loader):
        if i == 10:
            break
        recon, mu, logvar = model(data)
        test_loss += loss_function(recon, data, mu, logvar).item()
        count += len(data)
        if i == 0:
            n = min(data.size(0), 8)
            comparison = torch.cat([data[:n], recon.view(128, 1, 28, 28)[:n]])
            save_image(comparison.cpu(), os.path.join(args.out, "reconstruction.png"), nrow=n)
    sample = model.decode(torch.randn(64, 20))
    save_image(sample.view(64, 1, 28, 28), os.path.join(args.out, "sample.png"))
print(f"test loss {test_loss / count:.2f}")
print("wrote", " ".join(sorted(os.listdir(args.out))))
