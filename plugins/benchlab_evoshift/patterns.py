"""Class-wise pixel patterns (EvoShift Section V-A) as CMA-ES sees them, and back.

A pattern gives each attacked class ``N_p`` pixels, each ``(row, col, v_1..v_C)``: 3 numbers per
pixel for grayscale, 5 for colour. CMA-ES searches the flat vector of all of them in [0, 1]^D;
:func:`decode` maps any vector to valid integer locations and [0, 1] intensities, and
:func:`encode` is its inverse on locations (pixel centres) so a known pattern, e.g. the
``random-pixels`` baseline, can be injected into the search. Patterns are stored in the same
layout as the baselines' ``random-pixels`` extras: ``locations`` (K, N, 2) as (row, col) and
``values`` (K, N, C), so :func:`benchlab.stamp` applies them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Pattern:
    """Locations (k, N, 2) long and values (k, N, C) float of the first k classes' pixels."""

    locations: torch.Tensor
    values: torch.Tensor

    @property
    def classes(self) -> int:
        return len(self.locations)

    def extras(self, num_classes: int) -> dict[str, torch.Tensor]:
        """The poison extras for all ``num_classes`` classes; unattacked classes are zero and flagged.

        ``attacked`` (K,) marks the classes that carry a pattern (partial attacks, Figure 6).
        """
        pixels, channels = self.values.shape[1:]
        locations = torch.zeros(num_classes, pixels, 2, dtype=torch.long)
        values = torch.zeros(num_classes, pixels, channels)
        locations[: self.classes] = self.locations.cpu()
        values[: self.classes] = self.values.cpu()
        attacked = torch.arange(num_classes) < self.classes
        return {"locations": locations, "values": values, "attacked": attacked}


def dimension(classes: int, pixels: int, channels: int) -> int:
    """Length of the search vector: (row, col, one value per channel) per pixel per class."""
    return classes * pixels * (2 + channels)


def decode(vector, classes: int, pixels: int, shape: tuple[int, int, int]) -> Pattern:
    """Map a search vector (clipped to [0, 1]) to distinct integer locations and intensities.

    ``floor(z * H)`` picks the row (likewise the column); when two pixels of one class land on the
    same position, the later one moves to the nearest free position, so every image gets exactly
    ``pixels`` distinct pixels set.
    """
    channels, height, width = shape
    z = torch.as_tensor(np.asarray(vector, dtype=np.float64)).clamp(0.0, 1.0)
    z = z.view(classes, pixels, 2 + channels)
    rows = (z[..., 0] * height).floor().long().clamp(0, height - 1)
    cols = (z[..., 1] * width).floor().long().clamp(0, width - 1)
    locations = distinct(torch.stack((rows, cols), dim=-1), height, width)
    return Pattern(locations, z[..., 2:].float())


def distinct(locations: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Within each class, move repeated positions to the nearest free one (ties: raster order)."""
    if locations.shape[1] > height * width:
        raise ValueError(f"{locations.shape[1]} pixels per class exceed the {height}x{width} image")
    grid = torch.stack(torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij"), -1)
    grid = grid.view(-1, 2).float()
    out = locations.clone()
    for k in range(len(out)):
        taken = torch.zeros(height * width, dtype=torch.bool)
        for i in range(out.shape[1]):
            flat = out[k, i, 0] * width + out[k, i, 1]
            if taken[flat]:
                distance = (grid - out[k, i].float()).pow(2).sum(1).masked_fill(taken, float("inf"))
                flat = distance.argmin()  # argmin returns the first minimum: raster-order ties
                out[k, i] = grid[flat].long()
            taken[flat] = True
    return out


def encode(pattern: Pattern, shape: tuple[int, int, int]) -> np.ndarray:
    """The search vector whose :func:`decode` is ``pattern`` (locations at pixel centres)."""
    _, height, width = shape
    locations = pattern.locations.double()
    rows = (locations[..., 0] + 0.5) / height
    cols = (locations[..., 1] + 0.5) / width
    z = torch.cat((rows[..., None], cols[..., None], pattern.values.double().clamp(0, 1)), dim=-1)
    return z.flatten().numpy()
