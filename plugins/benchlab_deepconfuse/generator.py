"""The noise generator g_ξ of DeepConfuse: an encoder-decoder whose output is ε·tanh(·) (eq. 3).

Section 5 of the paper: for grayscale data (MNIST) the encoder and the decoder each have four 4x4
convolutions with 16-32-64-128 channels; for colour data (CIFAR-10) a U-Net (the same ladder with
skip connections) for its larger capacity. Every convolution halves (encoder) or doubles (decoder)
the resolution, so inputs are zero-padded, centred, to a multiple of 16 (at least 16: 8x8 digits
become 16x16) and the output is cropped back: the noise always has the input's exact shape.

Hidden layers are normalised with GroupNorm, and so is the output before ε·tanh (each image's map
standardised over its pixels and channels, with a learnable scale and shift). The paper does not say
which normalisation it uses; without any, the generator collapsed in our runs to one input-independent
saturated pattern within a few hundred steps (the shared part of the pseudo-update gradient
dominates, and ε·tanh then has no gradient left to learn class structure); a free output scale
lets the share of pixels at ±ε grow trial after trial, which freezes the noise the same way. GroupNorm rather than BatchNorm keeps an image's noise independent
of the other images in its batch, so a crafted set does not depend on how it was batched.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

CHANNELS = (16, 32, 64, 128)
# Four stride-2 convolutions: padded sides must be multiples of 2**4.
STRIDE_TOTAL = 2 ** len(CHANNELS)
GROUPS = 4
KINDS = ("auto", "encoder-decoder", "unet")


def padded_side(side: int) -> int:
    return max(STRIDE_TOTAL, -(-side // STRIDE_TOTAL) * STRIDE_TOTAL)


def down(cin: int, cout: int) -> nn.Sequential:
    """4x4 stride-2 convolution: halves the resolution."""
    return nn.Sequential(nn.Conv2d(cin, cout, 4, stride=2, padding=1, bias=False),
                         nn.GroupNorm(GROUPS, cout), nn.LeakyReLU(0.2))


# Sub-pixel taps of a 4x4 stride-2 padding-1 transposed convolution: output row 2i+a reads input rows
# i-1, i, i+1 through kernel rows TAPS[a] (index 4 is a zero row appended to the kernel).
TAPS = torch.tensor([[3, 1, 4], [4, 2, 0]])


class SubPixelConvTranspose2d(nn.ConvTranspose2d):
    """The 4x4 stride-2 transposed convolution, computed as a 3x3 convolution into 4 phases + pixel shuffle.

    Same parameters (and state dict) as ``nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1)`` and
    the same function up to float rounding (a test checks it). Used for the generator's last layer
    only, where it measured 1.17-1.39x faster forward + backward at batch 128 on an AVX2 CPU
    (``benchmarks/test_deepconfuse_iteration.py``); for the wider layers the plain transposed
    convolution measured 2-3x faster.
    """

    def __init__(self, cin: int, cout: int):
        super().__init__(cin, cout, 4, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cin, cout = self.weight.shape[:2]
        taps = TAPS.to(x.device)
        kernel = F.pad(self.weight, (0, 1, 0, 1))[:, :, taps][..., taps]  # (in, out, a, 3, b, 3)
        kernel = kernel.permute(1, 2, 4, 0, 3, 5).reshape(cout * 4, cin, 3, 3)
        bias = self.bias.repeat_interleave(4) if self.bias is not None else None
        return F.pixel_shuffle(F.conv2d(x, kernel, bias, padding=1), 2)


def up(cin: int, cout: int, last: bool = False) -> nn.Module:
    """4x4 stride-2 transposed convolution: doubles the resolution (the last one emits the noise)."""
    if last:
        return SubPixelConvTranspose2d(cin, cout)
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1, bias=False),
                         nn.GroupNorm(GROUPS, cout), nn.ReLU())


class NoiseGenerator(nn.Module):
    """g_ξ(x) = ε·tanh(decoder(encoder(x))), cropped to the input size; ``skips`` makes it a U-Net."""

    def __init__(self, channels: int, eps: float, skips: bool = False):
        super().__init__()
        self.eps = float(eps)
        self.skips = skips
        widths = (channels, *CHANNELS)
        self.encoder = nn.ModuleList(down(widths[i], widths[i + 1]) for i in range(len(CHANNELS)))
        # A U-Net decoder level reads its input concatenated with the encoder map of the same size.
        factor = 2 if skips else 1
        self.decoder = nn.ModuleList(
            up(widths[i + 1] * (factor if i + 1 < len(CHANNELS) else 1), widths[i], last=i == 0)
            for i in reversed(range(len(CHANNELS)))
        )
        # Each image's pre-tanh map standardised (learnable scale and shift): keeps ε·tanh off saturation.
        self.output_norm = nn.GroupNorm(1, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        side_h, side_w = padded_side(height), padded_side(width)
        top, left = (side_h - height) // 2, (side_w - width) // 2
        h = F.pad(x, (left, side_w - width - left, top, side_h - height - top))
        features = []
        for layer in self.encoder:
            h = layer(h)
            features.append(h)
        for level, layer in enumerate(self.decoder):
            if self.skips and level > 0:
                h = torch.cat((h, features[-1 - level]), dim=1)
            h = layer(h)
        h = self.output_norm(h[..., top : top + height, left : left + width])
        return self.eps * torch.tanh(h)


def build_generator(channels: int, eps: float, kind: str = "auto") -> NoiseGenerator:
    """The paper's choice: encoder-decoder for grayscale, U-Net for colour (``auto``)."""
    if kind not in KINDS:
        raise ValueError(f"unknown generator {kind!r}; valid: {', '.join(KINDS)}")
    if kind == "auto":
        kind = "unet" if channels == 3 else "encoder-decoder"
    return NoiseGenerator(channels, eps, skips=kind == "unet")


@torch.no_grad()
def noise_of(generator: nn.Module, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """g(x) for a whole set, batched, without a graph (noise is per-image, so batching is exact).

    256: on the 2-core VM, in a fresh process, 1437 digits took 97 ms in chunks of 64 to 512 and 146 ms
    in chunks of 1024 (about 100 ms for every size once ``benchlab.heap`` keeps freed memory mapped)."""
    if not len(x):
        return torch.zeros_like(x)
    return torch.cat([generator(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])
