"""torchvision-style models (lepton.vision.models) against the same networks in torch: ResNet-18
forward + backward (a training step without the optimizer: grads of every parameter) at batch 8 of
3x64x64 and batch 2 of 3x224x224, and ResNet-50 eval forward at batch 8 of 3x64x64, in images/s
on the same thread count, with the same weights (torch's, loaded into Lepton by name).

torchvision is not needed: the torch networks below are written from the architecture."""

import numpy as np

import lepton
from harness import Suite, main as bench_main
from lepton.vision import models


def torch_resnet(torch, bottleneck, layers, num_classes=1000):
    """torchvision's ResNet module tree (the same state_dict keys) from torch.nn primitives."""
    tnn = torch.nn

    def conv(cin, cout, k, stride=1):
        return tnn.Conv2d(cin, cout, k, stride, k // 2, bias=False)

    class Block(tnn.Module):
        def __init__(self, cin, planes, stride):
            super().__init__()
            out = planes * (4 if bottleneck else 1)
            if bottleneck:
                self.conv1, self.bn1 = conv(cin, planes, 1), tnn.BatchNorm2d(planes)
                self.conv2, self.bn2 = conv(planes, planes, 3, stride), tnn.BatchNorm2d(planes)
                self.conv3, self.bn3 = conv(planes, out, 1), tnn.BatchNorm2d(out)
            else:
                self.conv1, self.bn1 = conv(cin, planes, 3, stride), tnn.BatchNorm2d(planes)
                self.conv2, self.bn2 = conv(planes, planes, 3), tnn.BatchNorm2d(planes)
            self.downsample = (tnn.Sequential(conv(cin, out, 1, stride), tnn.BatchNorm2d(out))
                               if stride != 1 or cin != out else None)

        def forward(self, x):
            y = torch.relu(self.bn1(self.conv1(x)))
            y = self.bn2(self.conv2(y))
            if bottleneck:
                y = self.bn3(self.conv3(torch.relu(y)))
            return torch.relu(y + (x if self.downsample is None else self.downsample(x)))

    class ResNet(tnn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.bn1 = tnn.Conv2d(3, 64, 7, 2, 3, bias=False), tnn.BatchNorm2d(64)
            cin = 64
            for i, (planes, n) in enumerate(zip((64, 128, 256, 512), layers)):
                blocks = []
                for j in range(n):
                    blocks.append(Block(cin, planes, 2 if i > 0 and j == 0 else 1))
                    cin = planes * (4 if bottleneck else 1)
                setattr(self, f"layer{i + 1}", tnn.Sequential(*blocks))
            self.fc = tnn.Linear(cin, num_classes)

        def forward(self, x):
            x = tnn.functional.max_pool2d(torch.relu(self.bn1(self.conv1(x))), 3, 2, 1)
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(torch.flatten(tnn.functional.adaptive_avg_pool2d(x, 1), 1))

    return ResNet()


def pair(torch, build, bottleneck, layers):
    tmodel = torch_resnet(torch, bottleneck, layers)
    model = build()
    model.load_state_dict({k: lepton.from_numpy(v.numpy()) for k, v in tmodel.state_dict().items()})
    return model, tmodel


def train_step(model, x, w):
    def step():
        model.zero_grad(set_to_none=True)
        (model(x) * w).sum().backward()
    return step


def run(threads=2, quick=False):
    import torch

    lepton.set_num_threads(threads)
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    suite = Suite(f"torchvision models, torch {torch.__version__} (threads={threads})", "images/s", scale=1)
    suite.header()
    timing = dict(warmup=1, repeat=3 if quick else 5, min_time=0.0)
    model, tmodel = pair(torch, models.resnet18, False, [2, 2, 2, 2])
    shapes = [(8, 64)] if quick else [(8, 64), (2, 224)]
    for n, hw in shapes:
        x = rng.standard_normal((n, 3, hw, hw), dtype=np.float32)
        w = rng.standard_normal((n, 1000), dtype=np.float32)
        row = suite.add(f"resnet18 fwd+bwd {n}x3x{hw}x{hw}", n,
                        train_step(model, lepton.tensor(x), lepton.tensor(w)),
                        {"torch": train_step(tmodel, torch.from_numpy(x), torch.from_numpy(w))},
                        interleave=True, **timing)
        ms = {k: 1e3 * v for k, v in row["seconds"].items()}
        print(f"{'':34} ms/step: lepton {ms['lepton']:.1f}  torch {ms['torch']:.1f}")
    if not quick:
        model, tmodel = pair(torch, models.resnet50, True, [3, 4, 6, 3])
        model.eval(), tmodel.eval()
        x = rng.standard_normal((8, 3, 64, 64), dtype=np.float32)
        lx, tx = lepton.tensor(x), torch.from_numpy(x)

        def lepton_eval():
            with lepton.no_grad():
                model(lx)

        def torch_eval():
            with torch.no_grad():
                tmodel(tx)

        row = suite.add("resnet50 eval fwd 8x3x64x64", 8, lepton_eval, {"torch": torch_eval}, interleave=True,
                        **timing)
        ms = {k: 1e3 * v for k, v in row["seconds"].items()}
        print(f"{'':34} ms/batch: lepton {ms['lepton']:.1f}  torch {ms['torch']:.1f}")
    return suite


if __name__ == "__main__":
    bench_main(run, __doc__, "only ResNet-18 at batch 8 of 64x64, fewer repeats", threads_default=2)
