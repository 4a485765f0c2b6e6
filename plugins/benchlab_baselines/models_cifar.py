"""CIFAR-style deep nets: ResNet-(6n+2) (He et al. 2016, Sec. 4.2) and DenseNet-40 (Huang et al. 2017).

Both end in global average pooling, so any input size works; they are :class:`SplitNet` models whose
representation is the pooled feature vector. DenseNet transitions skip pooling on maps of 2x2 or less
so 8x8 digits keep a spatial map through all three blocks.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from benchlab import MaybePool, SplitNet, conv2d


class PadShortcut(nn.Module):
    """Option A shortcut: subsample spatially and zero-pad the new channels (no parameters)."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.extra, self.stride = cout - cin, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.extra // 2, self.extra - self.extra // 2))


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers plus the identity (or down-sampling) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int, shortcut: str):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        if stride == 1 and cin == cout:
            self.shortcut = nn.Identity()
        elif shortcut == "a":
            self.shortcut = PadShortcut(cin, cout, stride)
        else:  # option B: 1x1 projection
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


def resnet_cifar(depth: int, input_shape, num_classes: int, shortcut: str = "a") -> SplitNet:
    """ResNet-``depth`` with three stages of 16/32/64 channels and (depth-2)/6 blocks each."""
    if (depth - 2) % 6:
        raise ValueError(f"CIFAR ResNet depth must be 6n+2 (20, 32, 44, 56, 110); got {depth}")
    blocks = (depth - 2) // 6
    stem = conv2d(input_shape[0], 16, 3, padding=1, bias=False)
    layers: list[nn.Module] = [stem, nn.BatchNorm2d(16), nn.ReLU()]
    cin = 16
    for stage, width in enumerate((16, 32, 64)):
        for index in range(blocks):
            stride = 2 if stage > 0 and index == 0 else 1
            layers.append(BasicBlock(cin, width, stride, shortcut))
            cin = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    model = SplitNet(nn.Sequential(*layers), nn.Linear(cin, num_classes))
    # He initialisation, as in the paper (and its widely used reimplementations).
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(module.weight)
    return model


class DenseLayer(nn.Module):
    """BN-ReLU-Conv3x3 producing ``growth`` new maps, concatenated to its input."""

    def __init__(self, cin: int, growth: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(cin)
        self.conv = nn.Conv2d(cin, growth, 3, 1, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.conv(F.relu(self.bn(x)))], 1)


def transition(channels: int) -> nn.Sequential:
    """BN-ReLU-Conv1x1 (no compression in plain DenseNet) then 2x2 average pooling where it fits."""
    return nn.Sequential(
        nn.BatchNorm2d(channels), nn.ReLU(), nn.Conv2d(channels, channels, 1, bias=False), MaybePool("avg"),
    )


def densenet_cifar(input_shape, num_classes: int, depth: int = 40, growth: int = 12) -> SplitNet:
    """DenseNet-``depth`` (non-bottleneck): 16-channel stem, three blocks of (depth-4)/3 layers."""
    if (depth - 4) % 3:
        raise ValueError(f"DenseNet depth must be 3n+4 (40, 100, ...); got {depth}")
    per_block = (depth - 4) // 3
    channels = 16
    layers: list[nn.Module] = [conv2d(input_shape[0], channels, 3, padding=1, bias=False)]
    for block in range(3):
        for _ in range(per_block):
            layers.append(DenseLayer(channels, growth))
            channels += growth
        if block < 2:
            layers.append(transition(channels))
    layers += [nn.BatchNorm2d(channels), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return SplitNet(nn.Sequential(*layers), nn.Linear(channels, num_classes))
