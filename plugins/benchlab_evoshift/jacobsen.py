"""The prior-work baseline of EvoShift: a heuristic fixed-pixel encoding of the label.

Jacobsen et al. showed that one training-set pixel whose *position* encodes the class label is
enough for a network to rely on it and lose accuracy on clean test images. EvoShift (Section
VIII-B, Table 1) compares against this heuristic placement. Our reading of the heuristic: class
k's i-th pixel is the (i K + k)-th position in raster order from the top-left corner (so the
first pixel of every class lies in the top row for K <= W), set to full intensity in every
channel. No search, no randomness.
"""

from __future__ import annotations

import torch

from benchlab import CraftingContext, PoisonedSet, TensorData, resolve_budget

from .evoshift import choose_among, pixel_incompatibility, pixel_params
from .patterns import Pattern
from .population import perturb
from .sensitivity import PatternPoison


def label_positions(classes: int, pixels: int, height: int, width: int) -> torch.Tensor:
    """(classes, pixels, 2) distinct (row, col): pixel i of class k at raster index i * classes + k."""
    if classes * pixels > height * width:
        raise ValueError(f"{classes} classes x {pixels} pixels do not fit distinctly in {height}x{width}")
    flat = torch.arange(pixels).view(1, -1) * classes + torch.arange(classes).view(-1, 1)
    return torch.stack((flat // width, flat % width), dim=-1)


class JacobsenPixels(PatternPoison):
    """Heuristic label encoding: class k's N_p white pixels at fixed label-dependent positions.

    Reference: Jacobsen, Behrmann, Zemel, Bethge, "Excessive Invariance Causes Adversarial
    Vulnerability", ICLR 2019, arXiv:1811.00401 (a training pixel whose position encodes the
    label); used as the prior-work baseline of EvoShift, IEEE Access 9, 2021,
    doi:10.1109/ACCESS.2021.3101282, Table 1. Extras ``locations``/``values``/``attacked`` as
    ``evoshift``; metrics ``alpha_s``, ``alpha_n`` (eqs. 12-13).
    """

    name = "jacobsen-pixels"
    params = pixel_params()

    def incompatibility(self, info, victim):
        reason = pixel_incompatibility(self, info)
        if reason is None:
            pixels, (_, height, width) = self.p.pixels or info.budgets["l0"], info.input_shape
            classes = self.p.classes or info.num_classes
            if classes * pixels > height * width:
                return f"{classes} classes x {pixels} pixels do not fit distinctly in {height}x{width}"
        return reason

    def craft(self, train: TensorData, ctx: CraftingContext) -> PoisonedSet:
        pixels = int(resolve_budget(self.p.pixels, "l0", ctx))
        channels, height, width = train.x.shape[1:]
        num_classes = ctx.info.num_classes
        classes = self.p.classes or num_classes
        locations = label_positions(classes, pixels, height, width)
        pattern = Pattern(locations, torch.ones(classes, pixels, channels))
        mask = choose_among(train.y < classes, self.p.fraction, ctx.generator(506))
        return PoisonedSet(TensorData(perturb(train, mask, pattern), train.y), mask,
                           pattern.extras(num_classes))
