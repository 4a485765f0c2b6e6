"""How a poison cell scores a generative victim: reconstruction PSNR and pattern reproduction.

* ``recon_psnr``: mean over the clean test images of the per-image PSNR (pixel range [0, 1]) of the
  model's reconstruction, in dB; higher is better.
* When the poison declares a pixel pattern (:meth:`benchlab.PoisonedSet.pattern`): the share of
  reconstructions of clean test images that carry their class's pattern, the share of samples
  (as many as test images) that carry some class's pattern, and ``pattern_reproduction``, the share
  over both sets together. An image carries a pattern when its mean absolute deviation from the
  pattern's values, over the pattern's pixels and channels, is at most ``PATTERN_TOLERANCE``
  (a mean, not a maximum: a model that reproduces nine of ten pixels carries the pattern).
  ``pattern_in_test`` is the same count on the clean test images themselves: the chance level.
"""

from __future__ import annotations

import torch

from .data import DataSplits
from .generative import TrainedGenerative

PATTERN_TOLERANCE = 0.1
# The generator salt of the samples scored and drawn in the figure.
SAMPLE_SALT = 7001


def psnr(x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB for images in [0, 1] (a perfect copy is capped at 100 dB)."""
    mse = (x.float() - reference.float()).pow(2).flatten(1).mean(1)
    return (10 * torch.log10(1.0 / mse.clamp_min(1e-10))).clamp_max(100.0)


def pattern_images(locations: torch.Tensor, values: torch.Tensor, shape: tuple[int, int, int]):
    """Per-class pixel masks (K, H, W) and value images (K, C, H, W) of a ``stamp``-style pattern."""
    channels, height, width = shape
    num_classes, pixels, _ = values.shape
    where = torch.zeros(num_classes, height, width, dtype=torch.bool)
    image = torch.zeros(num_classes, channels, height, width)
    rows, cols = locations[..., 0].long().cpu(), locations[..., 1].long().cpu()
    classes = torch.arange(num_classes).unsqueeze(1).expand(-1, pixels)
    where[classes, rows, cols] = True
    image[classes, :, rows, cols] = values.float().cpu()
    return where, image


def carries(x: torch.Tensor, where: torch.Tensor, image: torch.Tensor,
            tolerance: float = PATTERN_TOLERANCE) -> torch.Tensor:
    """(N, K) bool: image n carries class k's pattern (mean deviation over its pixels within ``tolerance``)."""
    x = x.float().cpu()
    deviation = (x.unsqueeze(1) - image.unsqueeze(0)).abs().mean(2)  # (N, K, H, W), mean over channels
    mask = where.unsqueeze(0).float()
    mean = (deviation * mask).flatten(2).sum(2) / mask.flatten(2).sum(2).clamp_min(1)
    return mean <= tolerance


def generative_metrics(model: TrainedGenerative, splits: DataSplits, pattern, seed: int) -> tuple[dict, dict]:
    """The metrics above, and the tensors the figure draws (test inputs, reconstructions, samples)."""
    test = splits.test
    recon = model.reconstruct(test.x).clamp(0, 1)
    samples = model.sample(len(test), torch.Generator().manual_seed(seed * 1_000_003 + SAMPLE_SALT)).clamp(0, 1)
    metrics = {"recon_psnr": psnr(recon, test.x.to(recon.device)).mean().item()}
    if pattern is not None:
        locations, values, attacked = pattern
        where, image = pattern_images(locations, values, tuple(test.x.shape[1:]))
        labels = test.y.cpu()
        own = attacked.cpu()[labels]  # test images whose class carries a pattern

        def own_share(x):
            hit = carries(x, where, image).gather(1, labels.unsqueeze(1)).squeeze(1)
            return hit[own]

        in_recon = own_share(recon)
        in_samples = carries(samples, where[attacked.cpu()], image[attacked.cpu()]).any(1)
        both = torch.cat([in_recon, in_samples]).float()
        metrics.update(pattern_reproduction=both.mean().item(),
                       pattern_in_samples=in_samples.float().mean().item(),
                       pattern_in_reconstructions=in_recon.float().mean().item() if len(in_recon) else float("nan"),
                       pattern_in_test=own_share(test.x).float().mean().item() if own.any() else float("nan"))
    return metrics, {"test": test.x, "recon": recon, "samples": samples}
