"""Encoder, decoder and discriminator of Larsen et al. 2016 (arXiv:1512.09300, Sec. 4 / Table in App.),
sized by the image: one stride-2 stage per halving while the side stays even and >= 8.

8x8 gray (digits) gets one stage (8 -> 4), 28x28 gray two (28 -> 14 -> 7), 32x32 colour three
(32 -> 16 -> 8 -> 4). Channel widths double per stage from ``width`` (the paper: 64, 128, 256 for
64x64 faces). Convolutions are 5x5 as in the paper, with batch normalisation and ReLU
(encoder, decoder) or leaky ReLU (discriminator); the decoder ends in a sigmoid because images
are in [0, 1] (the paper's tanh is for [-1, 1]).
"""

from __future__ import annotations

import torch
from torch import nn


def stages(side: int) -> int:
    count = 0
    while side % 2 == 0 and side >= 8:
        side //= 2
        count += 1
    return count


def down(c_in: int, c_out: int, leaky: bool = False) -> nn.Sequential:
    act = nn.LeakyReLU(0.2) if leaky else nn.ReLU()
    return nn.Sequential(nn.Conv2d(c_in, c_out, 5, stride=2, padding=2, bias=False), nn.BatchNorm2d(c_out), act)


def up(c_in: int, c_out: int) -> nn.Sequential:
    # kernel 4, stride 2, padding 1 doubles the side exactly (the paper's 5x5 needs output_padding).
    return nn.Sequential(nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU())


class Shape:
    """Where the stride-2 stages leave an image of ``input_shape``: base side and widths."""

    def __init__(self, input_shape: tuple[int, int, int], width: int):
        self.channels, height, w = input_shape
        if height != w:
            raise ValueError(f"square images only, not {height}x{w}")
        self.stages = max(stages(height), 1)
        self.base = height // 2 ** self.stages
        if self.base * 2 ** self.stages != height:
            raise ValueError(f"a {height}x{w} image cannot be halved {self.stages} times")
        self.widths = [width * 2**i for i in range(self.stages)]
        self.flat = self.widths[-1] * self.base * self.base


class Encoder(nn.Module):
    """x -> (mu, log sigma^2) of q(z|x)."""

    def __init__(self, shape: Shape, latent: int):
        super().__init__()
        layers, c = [], shape.channels
        for width in shape.widths:
            layers.append(down(c, width))
            c = width
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.hidden = nn.Sequential(nn.Linear(shape.flat, 4 * latent, bias=False), nn.BatchNorm1d(4 * latent),
                                    nn.ReLU())
        self.mu = nn.Linear(4 * latent, latent)
        self.logvar = nn.Linear(4 * latent, latent)

    def forward(self, x):
        h = self.hidden(self.features(x))
        return self.mu(h), self.logvar(h)


class Decoder(nn.Module):
    """z -> image in [0, 1]."""

    def __init__(self, shape: Shape, latent: int):
        super().__init__()
        self.shape = shape
        top = shape.widths[-1]
        self.project = nn.Sequential(nn.Linear(latent, shape.flat, bias=False), nn.BatchNorm1d(shape.flat), nn.ReLU())
        widths = shape.widths[::-1]
        layers = [up(widths[i], widths[i + 1] if i + 1 < len(widths) else widths[-1]) for i in range(len(widths))]
        self.body = nn.Sequential(*layers)
        self.out = nn.Conv2d(widths[-1], shape.channels, 5, padding=2)
        self.top = top

    def forward(self, z):
        h = self.project(z).view(len(z), self.top, self.shape.base, self.shape.base)
        return torch.sigmoid(self.out(self.body(h)))


class Discriminator(nn.Module):
    """x -> (Dis_l(x), logit of "real"). Dis_l is the last convolutional layer's activation (the
    paper's l-th layer: its third of four layers), the representation eq. 6's likelihood is taken in."""

    def __init__(self, shape: Shape):
        super().__init__()
        first = max(shape.widths[0] // 2, 8)
        layers = [nn.Conv2d(shape.channels, first, 5, padding=2), nn.LeakyReLU(0.2)]
        c = first
        for width in shape.widths:
            layers.append(down(c, width, leaky=True))
            c = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(shape.flat, 256, bias=False), nn.BatchNorm1d(256),
                                  nn.LeakyReLU(0.2), nn.Linear(256, 1))

    def forward(self, x):
        features = self.features(x)
        return features, self.head(features).squeeze(1)


class VAEGANModule(nn.Module):
    """The three networks of one model; ``discriminator`` is None for the pixel-loss VAE."""

    def __init__(self, input_shape: tuple[int, int, int], latent: int, width: int, discriminator: bool):
        super().__init__()
        shape = Shape(input_shape, width)
        self.latent = latent
        self.encoder = Encoder(shape, latent)
        self.decoder = Decoder(shape, latent)
        self.discriminator = Discriminator(shape) if discriminator else None
