"""An MNIST CNN in the style of pytorch/examples' mnist/main.py: torchvision datasets and
transforms, a DataLoader with workers, Dropout/max_pool2d/log_softmax, Adadelta with StepLR,
evaluation with argmax/eq/view_as, torch.save of the state_dict. Prints 'test accuracy X'."""
import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from torch.optim.lr_scheduler import StepLR
from torchvision import datasets, transforms


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, 1)
        self.conv2 = nn.Conv2d(16, 32, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(4608, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(self.dropout1(x), 1)
        x = self.dropout2(F.relu(self.fc1(x)))
        return F.log_softmax(self.fc2(x), dim=1)


parser = argparse.ArgumentParser()
parser.add_argument("--batches", type=int, default=150)
parser.add_argument("--test-batches", type=int, default=20)
parser.add_argument("--save", default="")
args = parser.parse_args()

torch.manual_seed(1)
device = torch.accelerator.current_accelerator() if torch.accelerator.is_available() else torch.device("cpu")
transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
train = datasets.MNIST("../data", train=True, download=True, transform=transform)
test = datasets.MNIST("../data", train=False, transform=transform)
train_loader = torch.utils.data.DataLoader(train, batch_size=64, shuffle=True, num_workers=1, pin_memory=True)
test_loader = torch.utils.data.DataLoader(test, batch_size=500, shuffle=True)

model = Net().to(device)
optimizer = optim.Adadelta(model.parameters(), lr=1.0)
scheduler = StepLR(optimizer, step_size=1, gamma=0.7)
model.train()
for batch_idx, (data, target) in enumerate(train_loader):
    data, target = data.to(device), target.to(device)
    optimizer.zero_grad()
    loss = F.nll_loss(model(data), target)
    loss.backward()
    optimizer.step()
    if batch_idx % 50 == 0:
        print(f"Train [{batch_idx * len(data)}/{len(train_loader.dataset)} "
              f"({100. * batch_idx / len(train_loader):.0f}%)]\tLoss: {loss.item():.6f}")
    if batch_idx + 1 == args.batches:
        break
scheduler.step()

model.eval()
test_loss, correct, seen = 0, 0, 0
with torch.no_grad():
    for i, (data, target) in enumerate(test_loader):
        output = model(data.to(device))
        test_loss += F.nll_loss(output, target, reduction="sum").item()
        pred = output.argmax(dim=1, keepdim=True)
        correct += pred.eq(target.view_as(pred)).sum().item()
        seen += len(data)
        if i + 1 == args.test_batches:
            break
print(f"test loss {test_loss / seen:.4f} test accuracy {correct / seen:.4f} lr {scheduler.get_last_lr()[0]:.3f}")
if args.save:
    torch.save(model.state_dict(), args.save)
