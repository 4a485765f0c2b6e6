"""Small image classifiers: the MLP, LeNet-5, the DeepConfuse CNNs and EvoShift's GrayNet/ColorNet.

Every model is a :class:`SplitNet`, ``classifier(features(x))``, so a victim's representation split
is the pair of submodules. Inputs range from 8x8 digits to 96x96 STL-10 images: nets designed
around a fixed input size zero-pad smaller images up to it, 2x2 pooling that would shrink a map
below 2x2 is skipped (:class:`MaybePool`), and flattened sizes are measured with a dummy forward
pass instead of being hard-coded. First convolutions over 1-channel images are
:class:`~.one_channel_conv.OneChannelConv2d`: the same layer with a faster CPU input gradient.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .one_channel_conv import conv2d


class SplitNet(nn.Module):
    """``classifier(features(x))``: ``features`` ends in the flat representation the head reads."""

    def __init__(self, features: nn.Module, classifier: nn.Module):
        super().__init__()
        self.features = features
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class MaybePool(nn.Module):
    """2x2 max or average pooling, skipped when the map is already ``min_size`` or less on a side."""

    def __init__(self, kind: str = "max", min_size: int = 2):
        super().__init__()
        self.kind = kind
        self.min_size = min_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if min(x.shape[-2:]) <= self.min_size:
            return x
        return F.max_pool2d(x, 2) if self.kind == "max" else F.avg_pool2d(x, 2)

    def extra_repr(self) -> str:
        return f"kind={self.kind}, min_size={self.min_size}"


def pad_to(input_shape: tuple[int, int, int], side: int) -> nn.Module:
    """Zero-pad images smaller than ``side`` (centred) to the size an architecture was designed for."""
    _, h, w = input_shape
    dh, dw = max(0, side - h), max(0, side - w)
    if not (dh or dw):
        return nn.Identity()
    return nn.ZeroPad2d((dw // 2, dw - dw // 2, dh // 2, dh - dh // 2))


@torch.no_grad()
def flat_size(features: nn.Module, input_shape: tuple[int, int, int]) -> int:
    """Width of ``features``' flattened output, measured (eval mode: BatchNorm stats untouched)."""
    was_training = features.training
    features.eval()
    size = features(torch.zeros(2, *input_shape)).flatten(1).shape[1]
    features.train(was_training)
    return size


def conv_relu(cin: int, cout: int, kernel: int = 3, padding: int | None = None) -> list[nn.Module]:
    padding = kernel // 2 if padding is None else padding
    return [conv2d(cin, cout, kernel, padding=padding), nn.ReLU()]


def conv_bn_relu(cin: int, cout: int) -> list[nn.Module]:
    return [conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


def with_fc_head(conv: list[nn.Module], input_shape, hidden: tuple[int, ...], num_classes: int) -> SplitNet:
    """Conv trunk + flatten + ReLU hidden layers (all in ``features``) + a linear classifier."""
    trunk = nn.Sequential(*conv, nn.Flatten())
    width = flat_size(trunk, input_shape)
    layers = list(trunk)
    for units in hidden:
        layers += [nn.Linear(width, units), nn.ReLU()]
        width = units
    return SplitNet(nn.Sequential(*layers), nn.Linear(width, num_classes))


def mlp(input_shape, num_classes: int, hidden1: int = 100, hidden2: int = 100, dropout: float = 0.0):
    """Flattened pixels -> hidden1 -> hidden2 (ReLU, optional dropout after each) -> logits."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = input_shape[0] * input_shape[1] * input_shape[2]
    for units in (hidden1, hidden2):
        layers += [nn.Linear(width, units), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = units
    return SplitNet(nn.Sequential(*layers), nn.Linear(width, num_classes))


def lenet5(input_shape, num_classes: int) -> SplitNet:
    """LeNet-5 with ReLU and max-pooling; inputs below 32x32 are zero-padded to 32x32 as in the paper."""
    c = input_shape[0]
    conv = [
        pad_to(input_shape, 32),
        *conv_relu(c, 6, 5, padding=0), nn.MaxPool2d(2),
        *conv_relu(6, 16, 5, padding=0), nn.MaxPool2d(2),
    ]
    return with_fc_head(conv, input_shape, (120, 84), num_classes)


def two_conv_net(input_shape, num_classes: int, conv1: int, conv2: int, hidden: int) -> SplitNet:
    """conv(conv1)-5x5-pool, conv(conv2)-5x5-pool (unpadded), fc(hidden); small inputs padded to 28x28.

    The MNIST net family of Caffe's LeNet (20-50-500) and the TensorFlow tutorials (32-64-...).
    """
    c = input_shape[0]
    conv = [
        pad_to(input_shape, 28),
        *conv_relu(c, conv1, 5, padding=0), nn.MaxPool2d(2),
        *conv_relu(conv1, conv2, 5, padding=0), nn.MaxPool2d(2),
    ]
    return with_fc_head(conv, input_shape, (hidden,), num_classes)


def deepconfuse_cnn(input_shape, num_classes: int) -> SplitNet:
    """The Caffe-LeNet-style MNIST net (conv20-pool-conv50-pool-fc500); small inputs padded to 28x28."""
    return two_conv_net(input_shape, num_classes, 20, 50, 500)


def cnn5(input_shape, num_classes: int) -> SplitNet:
    """Five 3x3 conv-BN-ReLU layers (32-64-128-128-128), pooling where resolution allows, global pool."""
    c = input_shape[0]
    layers = [
        *conv_bn_relu(c, 32), *conv_bn_relu(32, 64), MaybePool(),
        *conv_bn_relu(64, 128), MaybePool(),
        *conv_bn_relu(128, 128), MaybePool(),
        *conv_bn_relu(128, 128), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    ]
    return SplitNet(nn.Sequential(*layers), nn.Linear(128, num_classes))


def graynet(input_shape, num_classes: int) -> SplitNet:
    """24C3-P-48C3-P-256FC (same-padded 3x3 convs so 8x8 inputs survive both pools)."""
    c = input_shape[0]
    conv = [*conv_relu(c, 24), MaybePool(), *conv_relu(24, 48), MaybePool()]
    return with_fc_head(conv, input_shape, (256,), num_classes)


def colornet(input_shape, num_classes: int) -> SplitNet:
    """32C3-32C3-P-64C3-64C3-P-128C3-128C3-P-512FC (same-padded 3x3 convs; any channel count)."""
    c = input_shape[0]
    conv = [
        *conv_relu(c, 32), *conv_relu(32, 32), MaybePool(),
        *conv_relu(32, 64), *conv_relu(64, 64), MaybePool(),
        *conv_relu(64, 128), *conv_relu(128, 128), MaybePool(),
    ]
    return with_fc_head(conv, input_shape, (512,), num_classes)
