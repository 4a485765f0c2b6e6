"""Victim building blocks: split networks, convolution blocks and the fast one-channel convolution."""

from .conv import MaybePool, conv_bn_relu, conv_relu, pad_to, two_conv_net
from .one_channel_conv import OneChannelConv2d, conv2d
from .split_net import SplitNet, SplitVictim, flat_size, with_fc_head

__all__ = ["MaybePool", "OneChannelConv2d", "SplitNet", "SplitVictim", "conv2d", "conv_bn_relu", "conv_relu",
           "flat_size", "pad_to", "two_conv_net", "with_fc_head"]
