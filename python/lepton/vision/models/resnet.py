"""ResNet (He et al. 2015, "Deep Residual Learning") in torchvision's form: the same module tree,
so state_dict keys and shapes match torchvision's and its checkpoints load; ResNeXt and Wide ResNet
are the Bottleneck network with other groups / widths.

Bottleneck strides in its 3x3 convolution (torchvision's "ResNet V1.5"), not in the first 1x1.
"""

import lepton
from lepton import nn
from lepton.vision.models._api import builder, weights_enum

__all__ = ["ResNet", "BasicBlock", "Bottleneck", "ResNet18_Weights", "ResNet34_Weights", "ResNet50_Weights",
           "ResNet101_Weights", "ResNet152_Weights", "ResNeXt50_32X4D_Weights", "ResNeXt101_32X8D_Weights",
           "ResNeXt101_64X4D_Weights", "Wide_ResNet50_2_Weights", "Wide_ResNet101_2_Weights", "resnet18", "resnet34",
           "resnet50", "resnet101", "resnet152", "resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d",
           "wide_resnet50_2", "wide_resnet101_2"]


def conv3x3(in_planes, out_planes, stride=1, groups=1, dilation=1):
    """3x3 convolution keeping the spatial size at stride 1 (padding = dilation); no bias, a norm follows."""
    return nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=dilation, groups=groups, bias=False,
                     dilation=dilation)


def conv1x1(in_planes, out_planes, stride=1):
    return nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a shortcut: relu(bn2(conv2(relu(bn1(conv1 x)))) + shortcut(x))."""

    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None, groups=1, base_width=64, dilation=1,
                 norm_layer=None):
        super().__init__()
        norm_layer = nn.BatchNorm2d if norm_layer is None else norm_layer
        if groups != 1 or base_width != 64:
            raise ValueError("BasicBlock only supports groups=1 and base_width=64")
        if dilation > 1:
            raise NotImplementedError("Dilation > 1 not supported in BasicBlock")
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = norm_layer(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = norm_layer(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce to `width` channels, 3x3 (strided, grouped, dilated), 1x1 expand to planes * 4,
    with a shortcut; width = planes * base_width / 64 * groups (ResNeXt, Wide ResNet)."""

    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None, groups=1, base_width=64, dilation=1,
                 norm_layer=None):
        super().__init__()
        norm_layer = nn.BatchNorm2d if norm_layer is None else norm_layer
        width = int(planes * (base_width / 64.0)) * groups
        self.conv1 = conv1x1(inplanes, width)
        self.bn1 = norm_layer(width)
        self.conv2 = conv3x3(width, width, stride, groups, dilation)
        self.bn2 = norm_layer(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = norm_layer(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """Stem (7x7/2 conv, BN, ReLU, 3x3/2 max pool), four stages of `layers[i]` blocks at 64, 128,
    256, 512 planes (stages 2-4 halve the size, or dilate instead where replace_stride_with_dilation
    says so), global average pool, fc to num_classes. Input [N, 3, H, W]."""

    def __init__(self, block, layers, num_classes=1000, zero_init_residual=False, groups=1, width_per_group=64,
                 replace_stride_with_dilation=None, norm_layer=None):
        super().__init__()
        self._norm_layer = nn.BatchNorm2d if norm_layer is None else norm_layer
        self.inplanes, self.dilation = 64, 1
        if replace_stride_with_dilation is None:
            replace_stride_with_dilation = [False, False, False]
        if len(replace_stride_with_dilation) != 3:
            raise ValueError("replace_stride_with_dilation should be None or a 3-element tuple, "
                             f"got {replace_stride_with_dilation}")
        self.groups, self.base_width = groups, width_per_group
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = self._norm_layer(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2, dilate=replace_stride_with_dilation[0])
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2, dilate=replace_stride_with_dilation[1])
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2, dilate=replace_stride_with_dilation[2])
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:  # each block starts as the identity (Goyal et al. 2017)
            for m in self.modules():
                if isinstance(m, Bottleneck) and m.bn3.weight is not None:
                    nn.init.zeros_(m.bn3.weight)
                elif isinstance(m, BasicBlock) and m.bn2.weight is not None:
                    nn.init.zeros_(m.bn2.weight)

    def _make_layer(self, block, planes, blocks, stride=1, dilate=False):
        norm_layer, previous_dilation = self._norm_layer, self.dilation
        if dilate:  # keep the resolution: trade this stage's stride for dilation from here on
            self.dilation *= stride
            stride = 1
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:  # the shortcut must match shape
            downsample = nn.Sequential(conv1x1(self.inplanes, planes * block.expansion, stride),
                                       norm_layer(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample, self.groups, self.base_width, previous_dilation,
                        norm_layer)]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(block(self.inplanes, planes, groups=self.groups, base_width=self.base_width,
                                dilation=self.dilation, norm_layer=norm_layer))
        return nn.Sequential(*layers)

    def _forward_impl(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(lepton.flatten(self.avgpool(x), 1))

    def forward(self, x):
        return self._forward_impl(x)


# ---- weights (names only: Lepton never downloads) and builders ---------------------------------

ResNet18_Weights = weights_enum("ResNet18_Weights", "resnet18", 11689512, __name__)
ResNet34_Weights = weights_enum("ResNet34_Weights", "resnet34", 21797672, __name__)
ResNet50_Weights = weights_enum("ResNet50_Weights", "resnet50", 25557032, __name__, v2=True)
ResNet101_Weights = weights_enum("ResNet101_Weights", "resnet101", 44549160, __name__, v2=True)
ResNet152_Weights = weights_enum("ResNet152_Weights", "resnet152", 60192808, __name__, v2=True)
ResNeXt50_32X4D_Weights = weights_enum("ResNeXt50_32X4D_Weights", "resnext50_32x4d", 25028904, __name__, v2=True)
ResNeXt101_32X8D_Weights = weights_enum("ResNeXt101_32X8D_Weights", "resnext101_32x8d", 88791336, __name__, v2=True)
ResNeXt101_64X4D_Weights = weights_enum("ResNeXt101_64X4D_Weights", "resnext101_64x4d", 83455272, __name__)
Wide_ResNet50_2_Weights = weights_enum("Wide_ResNet50_2_Weights", "wide_resnet50_2", 68883240, __name__, v2=True)
Wide_ResNet101_2_Weights = weights_enum("Wide_ResNet101_2_Weights", "wide_resnet101_2", 126886696, __name__,
                                        v2=True)


def _fixed(kwargs, **values):
    """kwargs with the values a named variant fixes (groups, width_per_group), refusing others."""
    for name, value in values.items():
        if kwargs.get(name, value) != value:
            raise ValueError(f"The parameter '{name}' expected value {value} but got {kwargs[name]} instead.")
    return {**kwargs, **values}


@builder(ResNet18_Weights)
def resnet18(**kwargs):
    """ResNet-18: BasicBlock x [2, 2, 2, 2]."""
    return ResNet(BasicBlock, [2, 2, 2, 2], **kwargs)


@builder(ResNet34_Weights)
def resnet34(**kwargs):
    """ResNet-34: BasicBlock x [3, 4, 6, 3]."""
    return ResNet(BasicBlock, [3, 4, 6, 3], **kwargs)


@builder(ResNet50_Weights)
def resnet50(**kwargs):
    """ResNet-50: Bottleneck x [3, 4, 6, 3]."""
    return ResNet(Bottleneck, [3, 4, 6, 3], **kwargs)


@builder(ResNet101_Weights)
def resnet101(**kwargs):
    """ResNet-101: Bottleneck x [3, 4, 23, 3]."""
    return ResNet(Bottleneck, [3, 4, 23, 3], **kwargs)


@builder(ResNet152_Weights)
def resnet152(**kwargs):
    """ResNet-152: Bottleneck x [3, 8, 36, 3]."""
    return ResNet(Bottleneck, [3, 8, 36, 3], **kwargs)


@builder(ResNeXt50_32X4D_Weights)
def resnext50_32x4d(**kwargs):
    """ResNeXt-50 32x4d: ResNet-50 with 32 groups of width 4 in each 3x3."""
    return ResNet(Bottleneck, [3, 4, 6, 3], **_fixed(kwargs, groups=32, width_per_group=4))


@builder(ResNeXt101_32X8D_Weights)
def resnext101_32x8d(**kwargs):
    """ResNeXt-101 32x8d."""
    return ResNet(Bottleneck, [3, 4, 23, 3], **_fixed(kwargs, groups=32, width_per_group=8))


@builder(ResNeXt101_64X4D_Weights)
def resnext101_64x4d(**kwargs):
    """ResNeXt-101 64x4d."""
    return ResNet(Bottleneck, [3, 4, 23, 3], **_fixed(kwargs, groups=64, width_per_group=4))


@builder(Wide_ResNet50_2_Weights)
def wide_resnet50_2(**kwargs):
    """Wide ResNet-50-2: ResNet-50 with the 3x3 convolutions twice as wide."""
    return ResNet(Bottleneck, [3, 4, 6, 3], **_fixed(kwargs, width_per_group=128))


@builder(Wide_ResNet101_2_Weights)
def wide_resnet101_2(**kwargs):
    """Wide ResNet-101-2."""
    return ResNet(Bottleneck, [3, 4, 23, 3], **_fixed(kwargs, width_per_group=128))
