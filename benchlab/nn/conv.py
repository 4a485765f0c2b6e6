"""Convolutional building blocks for small image classifiers of any input size.

Inputs range from 8x8 digits to 96x96 STL-10 images: nets designed around a fixed input size
zero-pad smaller images up to it (:func:`pad_to`), 2x2 pooling that would shrink a map below 2x2 is
skipped (:class:`MaybePool`). First convolutions over 1-channel images are
:class:`~benchlab.nn.one_channel_conv.OneChannelConv2d` (:func:`conv2d`): the same layer with a
faster CPU input gradient.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .one_channel_conv import conv2d
from .split_net import SplitNet, with_fc_head


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


def conv_relu(cin: int, cout: int, kernel: int = 3, padding: int | None = None) -> list[nn.Module]:
    padding = kernel // 2 if padding is None else padding
    return [conv2d(cin, cout, kernel, padding=padding), nn.ReLU()]


def conv_bn_relu(cin: int, cout: int) -> list[nn.Module]:
    return [conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


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
