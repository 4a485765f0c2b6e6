"""Poisoning building blocks: which training examples a poison changes, random pixel patterns, stamping.

Which examples are poisoned is always exactly ``round(fraction * N)`` of them, chosen by a seeded
permutation, so a mask count is reproducible and testable.
"""

from __future__ import annotations

import torch

from .norms import chunks

# Poison crafting touches every training image once; larger chunks than for gradient attacks are fine.
CRAFT_CHUNK = 4096
# The ``ctx.generator`` salt of the class-wise random pattern: the random-pixels poison draws it, and
# pattern searches that start from that same pattern (EvoShift) draw it with the same salt.
RANDOM_PATTERN_SALT = 202


def poison_mask(n: int, fraction: float, generator: torch.Generator, device) -> torch.Tensor:
    """A bool mask selecting exactly ``round(fraction * n)`` of ``n`` examples at random."""
    mask = torch.zeros(n, dtype=torch.bool)
    mask[torch.randperm(n, generator=generator)[: round(fraction * n)]] = True
    return mask.to(device)


def random_pattern(num_classes: int, pixels: int, shape: tuple[int, int, int], generator: torch.Generator):
    """Class-wise random pixel patterns: ``pixels`` distinct locations per class and their intensities.

    Returns ``locations`` (K, N, 2) as (row, col) and ``values`` (K, N, C) in [0, 1], the arguments
    of :func:`stamp`.
    """
    channels, height, width = shape
    if pixels > height * width:
        raise ValueError(f"pixels={pixels} exceeds the {height}x{width} image")
    # Distinct locations per class: the first N of a random permutation of all positions.
    flat = torch.rand(num_classes, height * width, generator=generator).argsort(1)[:, :pixels]
    locations = torch.stack((flat // width, flat % width), dim=-1)
    values = torch.rand(num_classes, pixels, channels, generator=generator)
    return locations, values


def stamp(x: torch.Tensor, labels: torch.Tensor, locations: torch.Tensor, values: torch.Tensor):
    """Set, in each image, the pixels of the pattern of its given label (a new tensor).

    ``locations`` (K, N, 2) holds (row, col) of each class's N pixels and ``values`` (K, N, C)
    their per-channel intensities.
    """
    num_classes, _, channels = values.shape
    height, width = x.shape[-2:]
    flat = (locations[..., 0] * width + locations[..., 1]).cpu()
    # Per-class full-size pattern images and masks, indexed by label below (no per-image loop).
    where = torch.zeros(num_classes, height * width, dtype=torch.bool)
    where.scatter_(1, flat, True)
    pattern = torch.zeros(num_classes, channels, height * width)
    pattern.scatter_(2, flat.unsqueeze(1).expand(-1, channels, -1), values.cpu().transpose(1, 2).float())
    where = where.view(num_classes, 1, height, width).to(x.device)
    pattern = pattern.view(num_classes, channels, height, width).to(x.device, x.dtype)
    out = x.clone()
    for s in chunks(len(x), CRAFT_CHUNK):
        label = labels[s].to(x.device)
        out[s] = torch.where(where[label], pattern[label], x[s])
    return out
