"""``badnets``: a trigger patch with a target label, a backdoor (Gu, Dolan-Gavitt & Garg, 2017)."""

from __future__ import annotations

import torch

from benchlab import (
    Context,
    DataSplits,
    Fitted,
    Metric,
    Param,
    PoisonAttack,
    PoisonedSet,
    TensorData,
    fraction_param,
    poison_mask,
    stamp,
)

CORNERS = ("bottom-right", "bottom-left", "top-right", "top-left")
PATTERNS = ("checkerboard", "white")


def trigger(size: int, corner: str, pattern: str, input_shape) -> tuple[torch.Tensor, torch.Tensor]:
    """The patch as :func:`benchlab.stamp` takes it: locations (1, size², 2) and values (1, size², C)."""
    channels, height, width = input_shape
    top = height - size if corner.startswith("bottom") else 0
    left = width - size if corner.endswith("right") else 0
    rows, cols = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    if pattern == "checkerboard":  # white on the diagonal cells, black between: visible on any background
        intensity = ((rows + cols + 1) % 2).float()
    else:
        intensity = torch.ones(size, size)
    locations = torch.stack((rows + top, cols + left), -1).view(1, -1, 2)
    values = intensity.view(1, -1, 1).expand(1, -1, channels).contiguous()
    return locations, values


class BadNets(PoisonAttack):
    """BadNets: a square trigger in a corner on a fraction of the training images, relabelled as the target.

    Reference: Gu, Dolan-Gavitt & Garg, "BadNets: Identifying Vulnerabilities in the Machine
    Learning Model Supply Chain", 2017, arXiv:1708.06733, Section 4 (MNIST single-target attack:
    a pixel pattern in the bottom-right corner, the poisoned images relabelled as the target class).
    Poisoned images are chosen among all training images (seeded); only the patch's pixels and the
    labels change. Extras ``locations`` and ``values`` keep the trigger.

    Metric: ``backdoor_success_rate``, the share of clean test images of the *other* classes that the
    victim assigns to ``target`` once the trigger is stamped on them (the headline; clean accuracy
    ``test_acc`` beside it says whether the backdoor stays hidden).
    """

    name = "badnets"
    params = (
        fraction_param(0.1),
        Param("target", int, 0, "the backdoor's target class", low=0),
        Param("size", int, 3, "side of the square trigger patch in pixels", low=1),
        Param("corner", str, "bottom-right", "where the trigger sits", choices=CORNERS),
        Param("pattern", str, "checkerboard", "trigger pattern", choices=PATTERNS),
    )
    declared_metrics = (
        Metric("backdoor_success_rate", higher_is_better=False, headline=True,
               help="badnets: share of triggered test images of the other classes classified as the target"),
    )

    def incompatibility(self, info, victim):
        _, height, width = info.input_shape
        if self.p.target >= info.num_classes:
            return f"badnets: target={self.p.target} is not a class of {info.name!r} (0..{info.num_classes - 1})"
        if self.p.size > min(height, width):
            return f"badnets: size={self.p.size} exceeds the {height}x{width} image"
        return None

    def _trigger(self, info):
        problem = self.incompatibility(info, None)
        if problem:
            raise ValueError(problem)
        return trigger(self.p.size, self.p.corner, self.p.pattern, info.input_shape)

    def craft(self, train: TensorData, ctx: Context) -> PoisonedSet:
        locations, values = self._trigger(ctx.info)
        mask = poison_mask(len(train), self.p.fraction, ctx.generator(1708), train.device)
        index = mask.nonzero().squeeze(1)
        x, y = train.x.clone(), train.y.clone()
        x[index] = stamp(train.x[index], torch.zeros_like(index), locations, values)
        y[index] = self.p.target
        return PoisonedSet(TensorData(x, y), mask, {"locations": locations, "values": values})

    def metrics(self, poison: PoisonedSet, fitted: Fitted, splits: DataSplits, ctx: Context) -> dict:
        test = splits.test
        others = test.y != self.p.target
        x = test.x[others]
        triggered = stamp(x, torch.zeros(len(x), dtype=torch.long, device=x.device),
                          poison.extras["locations"], poison.extras["values"])
        hit = fitted.classifier.predict(triggered) == self.p.target
        return {"backdoor_success_rate": hit.float().mean().item() if len(x) else float("nan")}
