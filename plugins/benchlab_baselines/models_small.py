"""Small image classifiers: the MLP, LeNet-5, the DeepConfuse CNNs and EvoShift's GrayNet/ColorNet.

Every model is a :class:`benchlab.SplitNet`, ``classifier(features(x))``, so a victim's
representation split is the pair of submodules; the convolution blocks, padding and pooling rules
are benchlab's (:mod:`benchlab.nn`).
"""

from __future__ import annotations

from torch import nn

from benchlab import MaybePool, SplitNet, conv_bn_relu, conv_relu, pad_to, two_conv_net, with_fc_head


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
