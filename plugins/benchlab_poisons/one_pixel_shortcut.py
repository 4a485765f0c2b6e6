"""``one-pixel-shortcut``: one class-wise pixel, found without a model (Wu et al., ICLR 2023)."""

from __future__ import annotations

import itertools

import torch

from benchlab import (
    Context,
    DataSplits,
    Fitted,
    Metric,
    PoisonAttack,
    PoisonedSet,
    TensorData,
    fraction_param,
    poison_mask,
    stamp,
)

# Keeps the objective finite where a pixel's deviation is the same on every image of the class.
MIN_VARIANCE = 1e-8


def boundary_values(channels: int) -> torch.Tensor:
    """The candidate colours: every corner of the [0, 1]^C cube ((2^C, C): black/white, or 8 RGB colours)."""
    return torch.tensor(list(itertools.product((0.0, 1.0), repeat=channels)))


def search_pixels(x: torch.Tensor, y: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per class, the (position, colour) maximising E[G] / Var[G] over the class's images.

    G(x; σ, ξ) = Σ_c |x_c(σ) − ξ_c| is the deviation of pixel σ from colour ξ. Classes are searched
    in order and a later class may not take a position an earlier one holds. Returns locations
    (K, 1, 2) as (row, col) and values (K, 1, C), the layout of :func:`benchlab.stamp`.
    """
    channels, height, width = x.shape[1:]
    if num_classes > height * width:
        raise ValueError(f"one-pixel-shortcut: {num_classes} classes need distinct pixels; "
                         f"a {height}x{width} image has {height * width}")
    colours = boundary_values(channels).to(x.device, x.dtype)
    taken = torch.zeros(height * width, dtype=torch.bool, device=x.device)
    locations, values = [], []
    for k in range(num_classes):
        images = x[y == k].flatten(2)  # (n, C, H*W)
        score = torch.full((len(colours), height * width), float("-inf"), device=x.device)
        if len(images):
            for v, colour in enumerate(colours):
                deviation = (images - colour.view(1, -1, 1)).abs().sum(1)  # (n, H*W)
                mean = deviation.mean(0)
                variance = deviation.var(0, unbiased=False) if len(images) > 1 else torch.zeros_like(mean)
                score[v] = mean / variance.clamp_min(MIN_VARIANCE)
        else:  # a class absent from the training split: the first free position, in white
            score[-1] = 0.0
        score[:, taken] = float("-inf")
        best = int(score.flatten().argmax())
        colour, position = divmod(best, height * width)
        taken[position] = True
        locations.append([[position // width, position % width]])
        values.append(colours[colour].view(1, -1))
    return torch.tensor(locations, dtype=torch.long), torch.stack(values).cpu()


class OnePixelShortcut(PoisonAttack):
    """One-Pixel Shortcut: every image of class k gets class k's searched pixel set to its searched colour.

    Reference: Wu, Chen, Xie & Huang, "One-Pixel Shortcut: on the Learning Preference of Deep Neural
    Networks", ICLR 2023, arXiv:2205.12141, Algorithm 1 (model-free search): for each class, over
    all pixel positions σ and the boundary colours ξ ∈ {0, 1}^C, maximise E[G]/Var[G] with
    G = Σ_c |x_c(σ) − ξ_c| over the class's clean training images, i.e. the pixel that deviates most,
    and most consistently, from the class. A ``fraction`` of the training images is stamped.
    Extras ``locations`` (K, 1, 2) and ``values`` (K, 1, C) keep the shortcut.

    Metric: ``shortcut_acc`` is the test accuracy when every clean test image carries its own class's
    pixel (high when the victim learned the shortcut instead of the task).
    """

    name = "one-pixel-shortcut"
    params = (fraction_param(1.0),)
    declared_metrics = (
        Metric("shortcut_acc", higher_is_better=False,
               help="one-pixel-shortcut: test accuracy with each test image carrying its class's pixel"),
    )

    def incompatibility(self, info, victim):
        _, height, width = info.input_shape
        if info.num_classes > height * width:
            return f"one-pixel-shortcut: {info.num_classes} classes need distinct pixels of a {height}x{width} image"
        return None

    def craft(self, train: TensorData, ctx: Context) -> PoisonedSet:
        x, y = train.x.to(ctx.device), train.y.to(ctx.device)
        locations, values = search_pixels(x, y, ctx.info.num_classes)
        mask = poison_mask(len(x), self.p.fraction, ctx.generator(2205), x.device)
        poisoned = x.clone()
        index = mask.nonzero().squeeze(1)
        poisoned[index] = stamp(x[index], y[index], locations, values)
        return PoisonedSet(TensorData(poisoned.to(train.device), train.y), mask.to(train.device),
                           {"locations": locations, "values": values})

    def metrics(self, poison: PoisonedSet, fitted: Fitted, splits: DataSplits, ctx: Context) -> dict:
        test = splits.test
        stamped = stamp(test.x, test.y, poison.extras["locations"], poison.extras["values"])
        return {"shortcut_acc": fitted.classifier.accuracy(stamped, test.y)}
