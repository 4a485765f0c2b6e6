"""``iss``: image shortcut squeezing, compressing the training images before any training."""

from __future__ import annotations

from io import BytesIO

import numpy as np
import torch
from PIL import Image

from benchlab import Param, TensorData, TrainingDefense

COMPRESSIONS = ("both", "jpeg", "grayscale")
JPEG_CHANNELS = (1, 3)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    return (x * 255).round().clamp(0, 255).to(torch.uint8)


def jpeg_round_trip(image: np.ndarray, quality: int) -> np.ndarray:
    """One uint8 image (H, W) or (H, W, 3) through Pillow's JPEG encoder and decoder."""
    buffer = BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(buffer))


def jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    """Each image of ``x`` (N, C, H, W) in [0, 1], C in {1, 3}, JPEG-encoded at ``quality`` and decoded."""
    images = to_uint8(x.cpu()).permute(0, 2, 3, 1).numpy()
    if images.shape[-1] == 1:
        images = images[..., 0]
    decoded = np.stack([jpeg_round_trip(image, quality) for image in images])
    out = torch.from_numpy(decoded.reshape(x.shape[0], x.shape[2], x.shape[3], x.shape[1])).permute(0, 3, 1, 2)
    return out.to(x.device, x.dtype) / 255


class ImageShortcutSqueezing(TrainingDefense):
    """Image shortcut squeezing: train on JPEG-compressed (and, for colour data, grayscale) images.

    Reference: Liu, Zhao & Larson, "Image Shortcut Squeezing: Countering Perturbative Availability
    Poisons with Compression", ICML 2023, arXiv:2301.13838, Section 3: the training images are
    compressed once before training, grayscale (ISS-G) against low-frequency, colour-based poison
    patterns and JPEG at quality 10 (ISS-J) against high-frequency ones; test images stay as they are.

    ``compression=both`` (the default, so one defense row covers both kinds of poison) converts
    colour images to grayscale and then JPEG-compresses every image; on one-channel data it is
    JPEG alone. ``jpeg`` and ``grayscale`` are the paper's single compressions. Grayscale images
    are repeated over three channels so the victim's input shape is unchanged. Works for torch and
    scikit-learn victims alike, since only the training data changes.
    """

    name = "iss"
    frameworks = ("torch", "sklearn")
    params = (
        Param("compression", str, "both", "which squeezing: grayscale then JPEG, JPEG alone or grayscale alone",
              choices=COMPRESSIONS),
        Param("quality", int, 10, "JPEG quality (1-100; the paper's ISS-J uses 10)", low=1, high=100),
    )
    test_spec = "iss"

    def incompatibility(self, info, victim):
        if self.p.compression == "grayscale" and not info.colour:
            return f"defense {self.spec} needs colour images; {info.name} has {info.channels} channel"
        if self.p.compression != "grayscale" and info.channels not in JPEG_CHANNELS:
            return f"defense {self.spec} JPEG-encodes 1- or 3-channel images; {info.name} has {info.channels}"
        return super().incompatibility(info, victim)

    def squeeze(self, x: torch.Tensor) -> torch.Tensor:
        """The training images after this defense's compression."""
        gray = self.p.compression in ("both", "grayscale") and x.shape[1] == 3
        if gray:
            from torchvision.transforms.functional import rgb_to_grayscale  # torchvision loads in ~1 s

            x = rgb_to_grayscale(x)  # ITU-R 601-2 luma, one channel: JPEG then codes luma alone
        if self.p.compression in ("both", "jpeg"):
            x = jpeg(x, self.p.quality)
        return x.expand(-1, 3, -1, -1).contiguous() if gray else x

    def fit(self, victim, train, ctx):
        return super().fit(victim, TensorData(self.squeeze(train.x), train.y), ctx)
