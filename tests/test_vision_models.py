"""lepton.vision.models (torchvision.models): parameter counts against torchvision's published
figures, state_dict keys and shapes against torchvision's names, eval forward (float32) and
train-mode gradients (float64) against the same networks written here from torch.nn primitives,
their weights loaded into Lepton's models by name (strict, as a converted checkpoint would be),
torchvision's initialisation, the weights API refusing to stand in random weights for trained
ones, and a training script through `lepton run`.

torchvision itself is not installed: the torch references below are written from the architectures."""

import functools
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import lepton
from lepton import nn
from lepton.vision import models

torch = pytest.importorskip("torch")
tnn = torch.nn


# ---- parameter counts and state_dict names ------------------------------------------------------

# torchvision's documented num_params (the meta of each model's IMAGENET1K_V1 weights).
NUM_PARAMS = {"resnet18": 11689512, "resnet34": 21797672, "resnet50": 25557032, "resnet101": 44549160,
              "resnet152": 60192808, "resnext50_32x4d": 25028904, "wide_resnet50_2": 68883240,
              "vgg11": 132863336, "vgg11_bn": 132868840, "vgg16": 138357544, "vgg16_bn": 138365992,
              "vgg19_bn": 143678248, "alexnet": 61100840, "mobilenet_v2": 3504872}


@pytest.fixture
def no_init(monkeypatch):
    """Skips the random initialisers (shapes only): drawing 100M+ normals would dominate these tests."""
    for name in ("kaiming_normal_", "normal_", "ones_", "zeros_", "_default_layer_init_"):
        monkeypatch.setattr(nn.init, name, lambda *a, **k: None)


@pytest.mark.parametrize("name", sorted(NUM_PARAMS))
def test_parameter_count_matches_torchvision(name, no_init):
    model = models.get_model(name, weights=None)
    assert sum(p.numel() for p in model.parameters()) == NUM_PARAMS[name]
    assert models.get_model_weights(name).DEFAULT.meta["num_params"] == NUM_PARAMS[name]


# Keys and shapes as torchvision's state_dicts have them (a sample along each network).
KEYS = {
    "resnet18": {"conv1.weight": (64, 3, 7, 7), "bn1.running_mean": (64,), "bn1.num_batches_tracked": (),
                 "layer1.0.conv1.weight": (64, 64, 3, 3), "layer1.1.bn2.bias": (64,),
                 "layer2.0.conv1.weight": (128, 64, 3, 3), "layer2.0.downsample.0.weight": (128, 64, 1, 1),
                 "layer2.0.downsample.1.running_var": (128,), "layer4.1.conv2.weight": (512, 512, 3, 3),
                 "fc.weight": (1000, 512), "fc.bias": (1000,)},
    "resnet50": {"layer1.0.conv1.weight": (64, 64, 1, 1), "layer1.0.conv3.weight": (256, 64, 1, 1),
                 "layer1.0.downsample.0.weight": (256, 64, 1, 1), "layer2.0.conv2.weight": (128, 128, 3, 3),
                 "layer3.5.bn3.weight": (1024,), "layer4.2.conv3.weight": (2048, 512, 1, 1),
                 "fc.weight": (1000, 2048)},
    "resnext50_32x4d": {"layer1.0.conv1.weight": (128, 64, 1, 1), "layer1.0.conv2.weight": (128, 4, 3, 3),
                        "layer4.0.conv2.weight": (1024, 32, 3, 3)},
    "vgg16": {"features.0.weight": (64, 3, 3, 3), "features.28.weight": (512, 512, 3, 3),
              "classifier.0.weight": (4096, 25088), "classifier.3.weight": (4096, 4096),
              "classifier.6.weight": (1000, 4096)},
    "vgg16_bn": {"features.1.running_var": (64,), "features.40.weight": (512, 512, 3, 3),
                 "features.41.num_batches_tracked": ()},
    "alexnet": {"features.0.weight": (64, 3, 11, 11), "features.3.weight": (192, 64, 5, 5),
                "features.6.weight": (384, 192, 3, 3), "features.8.weight": (256, 384, 3, 3),
                "features.10.weight": (256, 256, 3, 3), "classifier.1.weight": (4096, 9216),
                "classifier.4.weight": (4096, 4096), "classifier.6.weight": (1000, 4096)},
    "mobilenet_v2": {"features.0.0.weight": (32, 3, 3, 3), "features.0.1.running_mean": (32,),
                     "features.1.conv.0.0.weight": (32, 1, 3, 3), "features.1.conv.1.weight": (16, 32, 1, 1),
                     "features.1.conv.2.weight": (16,), "features.2.conv.0.0.weight": (96, 16, 1, 1),
                     "features.2.conv.1.0.weight": (96, 1, 3, 3), "features.2.conv.2.weight": (24, 96, 1, 1),
                     "features.2.conv.3.running_var": (24,), "features.17.conv.2.weight": (320, 960, 1, 1),
                     "features.18.0.weight": (1280, 320, 1, 1), "classifier.1.weight": (1000, 1280)},
}
# len(state_dict()) in torchvision: parameters + three buffers per BatchNorm.
NUM_KEYS = {"resnet18": 122, "resnet50": 320, "vgg16": 32, "vgg16_bn": 97, "alexnet": 16, "mobilenet_v2": 314}


@pytest.mark.parametrize("name", sorted(KEYS))
def test_state_dict_names_and_shapes_match_torchvision(name, no_init):
    state = models.get_model(name).state_dict()
    assert {k: tuple(state[k].shape) for k in KEYS[name]} == KEYS[name]
    if name in NUM_KEYS:
        assert len(state) == NUM_KEYS[name]
    assert all(v.dtype == lepton.int64 for k, v in state.items() if k.endswith("num_batches_tracked"))


def test_replacing_a_child_keeps_its_place(no_init):
    """siamese_network sets resnet.conv1 = Conv2d(1, ...) and then drops list(children())[:-1]."""
    m = models.resnet18(num_classes=2)
    m.conv1 = nn.Conv2d(1, 64, 7, 2, 3, bias=False)
    assert next(iter(m.named_children()))[0] == "conv1"


def test_resnet_structure_for_surgery():
    """What scripts reach into: children in torchvision's order (siamese_network drops the fc with
    list(children())[:-1]), fc.in_features, block classes and attributes."""
    m = models.resnet18(num_classes=10)
    assert [n for n, _ in m.named_children()] == ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3",
                                                  "layer4", "avgpool", "fc"]
    assert m.fc.in_features == 512 and m.fc.out_features == 10 and m.relu.inplace
    assert isinstance(m.layer1[0], models.resnet.BasicBlock) and m.layer2[0].stride == 2
    assert models.resnet.BasicBlock.expansion == 1 and models.resnet.Bottleneck.expansion == 4
    assert m.layer1[0].downsample is None and isinstance(m.layer2[0].downsample, nn.Sequential)
    trunk = nn.Sequential(*list(m.children())[:-1])
    assert tuple(trunk(lepton.randn(2, 3, 32, 32)).shape) == (2, 512, 1, 1)


# ---- torch references, written from the architectures ---------------------------------------------

def t_conv(cin, cout, k, stride=1, groups=1, dilation=1):
    return tnn.Conv2d(cin, cout, k, stride, padding=(k // 2) * dilation, dilation=dilation, groups=groups, bias=False)


class TBasic(tnn.Module):
    expansion = 1

    def __init__(self, cin, planes, stride, groups, width, dilation):
        super().__init__()
        self.conv1, self.bn1 = t_conv(cin, planes, 3, stride), tnn.BatchNorm2d(planes)
        self.conv2, self.bn2 = t_conv(planes, planes, 3), tnn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or cin != planes:
            self.downsample = tnn.Sequential(t_conv(cin, planes, 1, stride), tnn.BatchNorm2d(planes))

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(y + (x if self.downsample is None else self.downsample(x)))


class TBottleneck(tnn.Module):
    expansion = 4

    def __init__(self, cin, planes, stride, groups, width, dilation):
        super().__init__()
        mid = planes * width // 64 * groups
        self.conv1, self.bn1 = t_conv(cin, mid, 1), tnn.BatchNorm2d(mid)
        self.conv2, self.bn2 = t_conv(mid, mid, 3, stride, groups, dilation), tnn.BatchNorm2d(mid)
        self.conv3, self.bn3 = t_conv(mid, planes * 4, 1), tnn.BatchNorm2d(planes * 4)
        self.downsample = None
        if stride != 1 or cin != planes * 4:
            self.downsample = tnn.Sequential(t_conv(cin, planes * 4, 1, stride), tnn.BatchNorm2d(planes * 4))

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = torch.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return torch.relu(y + (x if self.downsample is None else self.downsample(x)))


class TResNet(tnn.Module):
    def __init__(self, block, layers, num_classes=1000, groups=1, width=64, dilate=(False, False, False)):
        super().__init__()
        self.conv1, self.bn1 = tnn.Conv2d(3, 64, 7, 2, 3, bias=False), tnn.BatchNorm2d(64)
        cin, dilation = 64, 1
        for i, (planes, n) in enumerate(zip((64, 128, 256, 512), layers)):
            stride, first_dilation = (1 if i == 0 else 2), dilation
            if i > 0 and dilate[i - 1]:  # a dilated stage keeps the resolution; its first block runs at
                dilation, stride = dilation * 2, 1  # the previous stage's dilation, the rest at the new one
            blocks = []
            for j in range(n):
                blocks.append(block(cin, planes, stride if j == 0 else 1, groups, width,
                                    first_dilation if j == 0 else dilation))
                cin = planes * block.expansion
            setattr(self, f"layer{i + 1}", tnn.Sequential(*blocks))
        self.fc = tnn.Linear(512 * block.expansion, num_classes)

    def forward(self, x):
        x = torch.nn.functional.max_pool2d(torch.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(x.mean((2, 3)))


VGG_CFG = {"vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]}


class TVGG(tnn.Module):
    def __init__(self, cfg, bn, num_classes):
        super().__init__()
        layers, cin = [], 3
        for v in cfg:
            if v == "M":
                layers.append(tnn.MaxPool2d(2))
            else:
                layers += [tnn.Conv2d(cin, v, 3, padding=1)] + ([tnn.BatchNorm2d(v)] if bn else []) + [tnn.ReLU()]
                cin = v
        self.features = tnn.Sequential(*layers)
        self.classifier = tnn.Sequential(tnn.Linear(25088, 4096), tnn.ReLU(), tnn.Dropout(), tnn.Linear(4096, 4096),
                                         tnn.ReLU(), tnn.Dropout(), tnn.Linear(4096, num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(tnn.functional.adaptive_avg_pool2d(self.features(x), 7), 1))


class TAlexNet(tnn.Module):
    def __init__(self, num_classes):
        super().__init__()
        R, P = tnn.ReLU, lambda: tnn.MaxPool2d(3, 2)
        self.features = tnn.Sequential(tnn.Conv2d(3, 64, 11, 4, 2), R(), P(), tnn.Conv2d(64, 192, 5, padding=2), R(),
                                       P(), tnn.Conv2d(192, 384, 3, padding=1), R(),
                                       tnn.Conv2d(384, 256, 3, padding=1), R(), tnn.Conv2d(256, 256, 3, padding=1),
                                       R(), P())
        self.classifier = tnn.Sequential(tnn.Dropout(), tnn.Linear(9216, 4096), R(), tnn.Dropout(),
                                         tnn.Linear(4096, 4096), R(), tnn.Linear(4096, num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(tnn.functional.adaptive_avg_pool2d(self.features(x), 6), 1))


def t_cba(cin, cout, k=3, stride=1, groups=1):
    return tnn.Sequential(tnn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), tnn.BatchNorm2d(cout),
                          tnn.ReLU6())


class TInverted(tnn.Module):
    def __init__(self, cin, cout, stride, t):
        super().__init__()
        hidden = cin * t
        self.res = stride == 1 and cin == cout
        expand = [t_cba(cin, hidden, 1)] if t != 1 else []
        self.conv = tnn.Sequential(*expand, t_cba(hidden, hidden, 3, stride, hidden),
                                   tnn.Conv2d(hidden, cout, 1, bias=False), tnn.BatchNorm2d(cout))

    def forward(self, x):
        return x + self.conv(x) if self.res else self.conv(x)


class TMobileNetV2(tnn.Module):
    SETTING = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
               (6, 320, 1, 1)]

    def __init__(self, num_classes):
        super().__init__()
        layers, cin = [t_cba(3, 32, 3, 2)], 32
        for t, c, n, s in self.SETTING:
            for i in range(n):
                layers.append(TInverted(cin, c, s if i == 0 else 1, t))
                cin = c
        self.features = tnn.Sequential(*layers, t_cba(320, 1280, 1))
        self.classifier = tnn.Sequential(tnn.Dropout(0.2), tnn.Linear(1280, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x).mean((2, 3)))


def load_from_torch(model, ref, seed=0):
    """model (Lepton) with the weights of ref (torch, default-initialised, BatchNorm affine parameters
    and running statistics moved away from 1 / 0 so that eval-mode parity exercises them), loaded by
    name: strict, so every key and shape must match, as a converted torchvision checkpoint's would."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in ref.modules():
            if isinstance(m, tnn.BatchNorm2d):
                for t, lo, hi in ((m.weight, 0.5, 1.5), (m.bias, -0.2, 0.2), (m.running_mean, -0.2, 0.2),
                                  (m.running_var, 0.5, 2.0)):
                    t.uniform_(lo, hi, generator=gen)
    model.load_state_dict({k: lepton.from_numpy(v.numpy()) for k, v in ref.state_dict().items()})
    return model


def close(a, b, rel=2e-4):
    """a (Lepton) and b (torch) agree to `rel` of b's largest magnitude."""
    a, b = np.asarray(a.detach().numpy() if hasattr(a, "detach") else a), b.detach().numpy()
    assert a.shape == b.shape
    scale = max(np.abs(b).max(), 1e-6)
    assert np.abs(a - b).max() <= rel * scale, (np.abs(a - b).max(), scale)


CASES = {  # name: (Lepton model, its torch reference, input size)
    "resnet18": (lambda: models.resnet18(num_classes=10), lambda: TResNet(TBasic, [2, 2, 2, 2], 10), 64),
    "resnet50": (lambda: models.resnet50(num_classes=10), lambda: TResNet(TBottleneck, [3, 4, 6, 3], 10), 64),
    "resnext50_32x4d": (lambda: models.resnext50_32x4d(num_classes=10),
                        lambda: TResNet(TBottleneck, [3, 4, 6, 3], 10, groups=32, width=4), 32),
    "resnet50_dilated": (lambda: models.resnet50(num_classes=10, replace_stride_with_dilation=[False, True, True]),
                         lambda: TResNet(TBottleneck, [3, 4, 6, 3], 10, dilate=(False, True, True)), 32),
    "vgg11_bn": (lambda: models.vgg11_bn(num_classes=10), lambda: TVGG(VGG_CFG["vgg11"], True, 10), 32),
    "alexnet": (lambda: models.alexnet(num_classes=10), lambda: TAlexNet(10), 64),
    "mobilenet_v2": (lambda: models.mobilenet_v2(num_classes=10), lambda: TMobileNetV2(10), 64),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_eval_forward_matches_torch_reference(name, no_init):
    make, make_ref, size = CASES[name]
    torch.manual_seed(0)
    ref = make_ref()
    model = load_from_torch(make(), ref)
    model.eval(), ref.eval()
    x = np.random.default_rng(1).standard_normal((2, 3, size, size)).astype(np.float32)
    with lepton.no_grad():
        out = model(lepton.tensor(x))
    assert tuple(out.shape) == (2, 10)
    close(out, ref(torch.from_numpy(x)))


def test_resnet18_train_step_gradients_and_running_stats_match_torch(no_init):
    """In float64: at batch 2 the train-mode gradient is ill-conditioned (BatchNorm over 8 values per
    channel in layer4, ReLU kinks), so float32 rounding of 1e-6 moves torch's own float64 gradients
    by up to 1e-3 and 1e-5 by 16%; float64 compares the structure, not the rounding (and even float64
    rounding, amplified ~1e5, moves with the summation order other tests' thread settings leave,
    hence 1e-6 rather than 1e-10: a structural error is O(1))."""
    torch.manual_seed(0)
    ref = TResNet(TBasic, [2, 2, 2, 2], 10)
    model = load_from_torch(models.resnet18(num_classes=10), ref).double()
    ref = ref.double()
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal((2, 3, 64, 64)), rng.standard_normal((2, 10))
    out = model(lepton.tensor(x))
    (out * lepton.tensor(w)).sum().backward()
    ref_out = ref(torch.from_numpy(x))
    (ref_out * torch.from_numpy(w)).sum().backward()
    close(out, ref_out, rel=1e-6)
    ref_params = dict(ref.named_parameters())
    for name, p in model.named_parameters():
        close(p.grad, ref_params[name].grad, rel=1e-6)
    ref_state = ref.state_dict()
    for name, t in model.state_dict().items():
        if "running" in name or "num_batches" in name:
            close(t, ref_state[name], rel=1e-6)


def test_resnet18_float32_gradients_with_frozen_norms_match_torch(no_init):
    """Float32 backward through every layer kind, with BatchNorm in eval mode (fine-tuning with
    frozen statistics), where the gradient is well conditioned."""
    torch.manual_seed(0)
    ref = TResNet(TBasic, [2, 2, 2, 2], 10)
    model = load_from_torch(models.resnet18(num_classes=10), ref)
    model.eval(), ref.eval()
    rng = np.random.default_rng(4)
    x, w = rng.standard_normal((2, 3, 64, 64), dtype=np.float32), rng.standard_normal((2, 10), dtype=np.float32)
    (model(lepton.tensor(x)) * lepton.tensor(w)).sum().backward()
    (ref(torch.from_numpy(x)) * torch.from_numpy(w)).sum().backward()
    ref_params = dict(ref.named_parameters())
    for name, p in model.named_parameters():
        close(p.grad, ref_params[name].grad, rel=1e-4)


def test_torchvision_safetensors_checkpoint_loads(tmp_path):
    """A state_dict written by torch with safetensors.torch.save_file (how a converted torchvision
    checkpoint arrives) loads with lepton.load into the Lepton model and gives torch's outputs."""
    safetensors_torch = pytest.importorskip("safetensors.torch")
    torch.manual_seed(0)
    ref = TResNet(TBasic, [2, 2, 2, 2], 1000).eval()
    for m in ref.modules():
        if isinstance(m, tnn.BatchNorm2d):
            m.running_var.uniform_(0.5, 2.0), m.running_mean.uniform_(-0.2, 0.2), m.num_batches_tracked.fill_(7)
    safetensors_torch.save_file(ref.state_dict(), tmp_path / "resnet18.safetensors")
    model = models.resnet18(weights=None)
    model.load_state_dict(lepton.load(tmp_path / "resnet18.safetensors"))
    model.eval()
    assert model.bn1.num_batches_tracked.item() == 7
    x = np.random.default_rng(3).standard_normal((1, 3, 64, 64)).astype(np.float32)
    with lepton.no_grad():
        close(model(lepton.tensor(x)), ref(torch.from_numpy(x)))


# ---- initialisation and arguments ---------------------------------------------------------------

def test_resnet_initialisation_follows_torchvision():
    lepton.manual_seed(0)
    m = models.resnet18()
    w = m.layer1[0].conv1.weight.numpy()
    assert abs(w.std() - (2 / (64 * 9)) ** 0.5) < 0.003 and abs(w.mean()) < 0.002  # kaiming_normal_, fan_out
    assert abs(m.conv1.weight.numpy().std() - (2 / (64 * 49)) ** 0.5) < 0.002
    assert (m.bn1.weight.numpy() == 1).all() and (m.bn1.bias.numpy() == 0).all()
    assert (m.layer1[0].bn2.weight.numpy() == 1).all()
    bound = 1 / 512 ** 0.5  # fc keeps Linear's default U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert np.abs(m.fc.weight.numpy()).max() <= bound and np.abs(m.fc.weight.numpy()).max() > 0.9 * bound
    z = models.resnet18(zero_init_residual=True)
    assert all((b.bn2.weight.numpy() == 0).all() for layer in (z.layer1, z.layer4) for b in layer)
    assert (z.bn1.weight.numpy() == 1).all() and (z.layer1[0].bn1.weight.numpy() == 1).all()
    zb = models.ResNet(models.resnet.Bottleneck, [1, 2, 1, 1], zero_init_residual=True, num_classes=2)
    assert (zb.layer2[1].bn3.weight.numpy() == 0).all() and (zb.layer2[1].bn2.weight.numpy() == 1).all()


def test_mobilenet_initialisation_follows_torchvision():
    lepton.manual_seed(0)
    m = models.mobilenet_v2()
    fc = m.classifier[1].weight.numpy()
    assert abs(fc.std() - 0.01) < 0.0005 and (m.classifier[1].bias.numpy() == 0).all()
    w = m.features[18][0].weight.numpy()  # 1x1 conv 320 -> 1280: std sqrt(2 / fan_out)
    assert abs(w.std() - (2 / 1280) ** 0.5) < 0.002
    assert isinstance(m.features[1].conv[0][2], nn.ReLU6) and m.features[2].conv[1][0].groups == 96
    assert m.features[3].use_res_connect and not m.features[2].use_res_connect


def test_builder_arguments(no_init):
    assert models.resnet18(num_classes=7).fc.out_features == 7
    groups = models.resnet50(groups=2, width_per_group=32, num_classes=3).layer1[0].conv2
    assert groups.groups == 2 and groups.in_channels == 64
    d = models.resnet50(replace_stride_with_dilation=[False, False, True], num_classes=3)
    assert d.layer4[0].conv2.stride == (1, 1) and d.layer4[1].conv2.dilation == (2, 2)
    assert d.layer4[0].conv2.dilation == (1, 1) and d.layer4[0].downsample[0].stride == (1, 1)
    with pytest.raises(ValueError, match="3-element"):
        models.resnet18(replace_stride_with_dilation=[True])
    with pytest.raises(NotImplementedError, match="Dilation > 1 not supported in BasicBlock"):
        models.resnet18(replace_stride_with_dilation=[False, False, True])
    with pytest.raises(ValueError, match="BasicBlock only supports groups=1"):
        models.resnet18(groups=2)
    with pytest.raises(ValueError, match="'groups' expected value 32"):
        models.resnext50_32x4d(groups=8)
    norm = models.resnet18(norm_layer=functools.partial(nn.BatchNorm2d, eps=1e-3))
    assert norm.layer1[0].bn1.eps == 1e-3 and norm.layer2[0].downsample[1].eps == 1e-3
    assert models.mobilenet_v2(width_mult=0.5).features[0][0].out_channels == 16
    assert models.mobilenet_v2(width_mult=0.5).last_channel == 1280
    assert models.vgg11(dropout=0.2, num_classes=4).classifier[2].p == 0.2
    with pytest.raises(ValueError, match="inverted_residual_setting"):
        models.MobileNetV2(inverted_residual_setting=[[1, 16, 1]])
    with pytest.raises(TypeError, match="keyword"):
        models.resnet18(False, True)


# ---- weights: names only, never random weights in place of trained ones ---------------------------------

@pytest.mark.parametrize("weights", ["DEFAULT", "IMAGENET1K_V1", "ResNet18_Weights.DEFAULT",
                                     models.ResNet18_Weights.DEFAULT, models.ResNet18_Weights.IMAGENET1K_V1])
def test_asking_for_trained_weights_raises_with_the_way_to_load_them(weights):
    with pytest.raises(RuntimeError, match="never downloads") as err:
        models.resnet18(weights=weights)
    assert "resnet18(weights=None)" in str(err.value) and "load_state_dict" in str(err.value)
    assert "safetensors.torch.save_file(torchvision.models.resnet18(weights='IMAGENET1K_V1')" in str(err.value)
    with pytest.raises(RuntimeError, match="never downloads"):
        models.get_model("resnet18", weights=weights)


def test_legacy_pretrained_argument():
    with pytest.warns(UserWarning, match="'pretrained' is deprecated"):
        assert isinstance(models.resnet18(pretrained=False), models.ResNet)
    for call in (lambda: models.vgg11(pretrained=True), lambda: models.alexnet(True),
                 lambda: models.mobilenet_v2(models.MobileNet_V2_Weights.DEFAULT)):
        with warnings.catch_warnings(), pytest.raises(RuntimeError, match="never downloads"):
            warnings.simplefilter("ignore")
            call()
    with pytest.raises(RuntimeError, match=r"ResNet50_Weights.IMAGENET1K_V2.get_state_dict\(\)"):
        models.ResNet50_Weights.DEFAULT.get_state_dict(progress=True)


def test_weights_enums_and_registry():
    W = models.ResNet50_Weights
    assert [w.name for w in W] == ["IMAGENET1K_V1", "IMAGENET1K_V2"] and W.DEFAULT is W.IMAGENET1K_V2
    assert models.ResNet18_Weights.DEFAULT is models.ResNet18_Weights.IMAGENET1K_V1
    assert models.VGG16_Weights.IMAGENET1K_FEATURES.meta["num_params"] == 138357544
    assert models.get_weight("MobileNet_V2_Weights.IMAGENET1K_V2") is models.MobileNet_V2_Weights.DEFAULT
    assert models.get_model_weights("alexnet") is models.AlexNet_Weights
    assert models.get_model_weights(models.resnet34) is models.ResNet34_Weights
    with pytest.raises(ValueError, match="Failed to find Weights"):
        models.resnet18(weights="IMAGENET1K_V9")
    with pytest.raises(TypeError, match="expected ResNet18_Weights"):
        models.resnet18(weights=models.ResNet50_Weights.DEFAULT)
    assert {"resnet18", "resnet152", "vgg16_bn", "alexnet", "mobilenet_v2", "wide_resnet101_2"} <= \
        set(models.list_models())
    assert models.list_models(models.vgg, exclude="*_bn") == ["vgg11", "vgg13", "vgg16", "vgg19"]
    assert models.list_models(include=["alex*", "mobile*"]) == ["alexnet", "mobilenet_v2"]
    with pytest.raises(ValueError, match="Unknown model"):
        models.get_model("resnet9")
    assert isinstance(models.get_model("ResNet18", num_classes=3), models.ResNet)
    with pytest.raises(AttributeError, match="no attribute 'efficientnet_b0'; Lepton builds alexnet, mobilenet_v2"):
        models.efficientnet_b0


def test_weights_transforms_preset():
    preset = models.ResNet50_Weights.IMAGENET1K_V2.transforms()
    assert preset.resize_size == [232] and preset.crop_size == [224]
    img = lepton.tensor(np.full((3, 300, 400), 255, np.uint8))
    out = preset(img)
    assert tuple(out.shape) == (3, 224, 224)
    np.testing.assert_allclose(out.numpy()[:, 0, 0], (1 - np.array([0.485, 0.456, 0.406])) / [0.229, 0.224, 0.225],
                               rtol=1e-5)


# ---- through `lepton run` ---------------------------------------------------------------------------

SCRIPT = """
import torch, torchvision
import torch.nn as nn
from torchvision.models import ResNet18_Weights, resnet18
from torchvision.models.resnet import BasicBlock
from torchvision.models.alexnet import AlexNet
from torchvision.models.mobilenet import MobileNetV2
import torchvision.models.vgg

assert callable(torchvision.models.alexnet) and AlexNet is torchvision.models.AlexNet  # the builder, as in torchvision
assert MobileNetV2 is torchvision.models.MobileNetV2 and callable(torchvision.models.vgg.vgg11_bn)

class Siamese(nn.Module):  # pytorch/examples siamese_network's surgery on resnet18 (on RGB input)
    def __init__(self):
        super().__init__()
        self.resnet = torchvision.models.resnet18(weights=None)
        self.fc_in_features = self.resnet.fc.in_features
        self.resnet = torch.nn.Sequential(*(list(self.resnet.children())[:-1]))
        self.fc = nn.Sequential(nn.Linear(self.fc_in_features * 2, 256), nn.ReLU(inplace=True), nn.Linear(256, 1))

    def forward(self, a, b):
        a, b = self.resnet(a).view(a.size(0), -1), self.resnet(b).view(b.size(0), -1)
        return torch.sigmoid(self.fc(torch.cat((a, b), 1)))

try:
    resnet18(weights=ResNet18_Weights.DEFAULT)
except RuntimeError as e:
    print("refused", "never downloads" in str(e))
assert torchvision.models.resnet.BasicBlock is BasicBlock
torch.manual_seed(0)
model = Siamese()
opt = torch.optim.Adadelta(model.parameters(), lr=0.1)
a, b = torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32)
target = torch.tensor([1.0, 0.0])
for step in range(3):
    opt.zero_grad()
    loss = nn.BCELoss()(model(a, b).squeeze(), target)
    loss.backward()
    opt.step()
    print(f"loss {loss.item():.4f}")
"""


def test_siamese_style_script_through_lepton_run(tmp_path):
    (tmp_path / "siamese.py").write_text(textwrap.dedent(SCRIPT))
    out = subprocess.run([sys.executable, "-m", "lepton.run", "siamese.py"], capture_output=True, text=True,
                         cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "refused True" in out.stdout
    losses = [float(line.split()[1]) for line in out.stdout.splitlines() if line.startswith("loss")]
    assert len(losses) == 3 and all(np.isfinite(losses)) and losses[-1] < losses[0], out.stdout
