"""Baseline poison attacks: the clean reference, uniform noise, class-wise random pixels, label flips.

Which examples are poisoned is always exactly ``round(fraction * N)`` of them, chosen by a seeded
permutation, so a mask count is reproducible and testable. Random draws happen on a CPU generator
from ``ctx.generator`` and are moved to the data's device afterwards.
"""

from __future__ import annotations

import torch

from benchlab import (
    CRAFT_CHUNK,
    RANDOM_PATTERN_SALT,
    Context,
    CraftingContext,
    DataSplits,
    Fitted,
    Metric,
    Param,
    PoisonAttack,
    PoisonedSet,
    TensorData,
    chunks,
    eps_param,
    fraction_param,
    missing_budget,
    norm_param,
    poison_mask,
    random_pattern,
    resolve_budget,
    stamp,
)


class Clean(PoisonAttack):
    """No poison: the training set unchanged (the clean reference row).

    Reference: none; this is the clean-training baseline every poison is compared against.
    """

    name = "clean"
    leaves_data_clean = True  # its victims are the evasion cells' clean models: trained once, shared

    def craft(self, train: TensorData, ctx: CraftingContext) -> PoisonedSet:
        return PoisonedSet(train, torch.zeros(len(train), dtype=torch.bool, device=train.device))


class UniformNoise(PoisonAttack):
    """Uniform random L-inf noise in [-eps, eps] on a fraction of the training images (a control).

    Reference: the random-noise control of DeepConfuse, Feng, Cai & Zhou, "Learning to Confuse:
    Generating Training Time Adversarial Data with Auto-Encoder", NeurIPS 2019,
    https://arxiv.org/abs/1905.09027 (also used by Huang et al., "Unlearnable Examples",
    ICLR 2021, https://arxiv.org/abs/2101.04898). It should barely change test accuracy.
    """

    name = "uniform-noise"
    params = (norm_param(choices=("linf",)), eps_param(), fraction_param(1.0))

    def incompatibility(self, info, victim):
        return missing_budget(self.p.eps, "linf", info)

    def craft(self, train: TensorData, ctx: CraftingContext) -> PoisonedSet:
        eps = resolve_budget(self.p.eps, "linf", ctx)
        generator = ctx.generator(201)
        mask = poison_mask(len(train), self.p.fraction, generator, train.device)
        index = mask.nonzero().squeeze(1)
        x = train.x.clone()
        for s in chunks(len(index), CRAFT_CHUNK):
            rows = index[s]
            noise = (2 * torch.rand((len(rows), *x.shape[1:]), generator=generator) - 1) * eps
            x[rows] = (x[rows] + noise.to(x.device, x.dtype)).clamp(0.0, 1.0)
        return PoisonedSet(TensorData(x, train.y), mask)


class RandomPixels(PoisonAttack):
    """Class-wise random pixel patterns: every image of class k gets class k's N random pixels.

    Reference: the "Random" baseline of EvoShift, "Adversarial training-time attack against
    discriminative and generative convolutional models", IEEE Access 9 (2021) (no arXiv version
    known). For each class, ``pixels`` locations and per-channel intensities are drawn once
    (seeded); extras ``locations`` (K, N, 2) (row, col) and ``values`` (K, N, C) keep the pattern.

    Metrics: ``pattern_acc`` is the test accuracy when each clean test image carries the pattern
    of its true class (higher than clean test accuracy: the shortcut was learned);
    ``pattern_hijack`` is the fraction of test images predicted as class (y+1) mod K when
    stamped with that class's pattern (how strongly the pattern alone decides the label).
    """

    name = "random-pixels"
    declared_metrics = (
        Metric("pattern_acc", False, "accuracy on test images stamped with their own class's pattern "
                                     "(above test_acc: the model learned the shortcut)"),
        Metric("pattern_hijack", False, "share of test images stamped with class (y+1) mod K's pattern "
                                        "that are predicted as that class"),
    )
    params = (
        Param("pixels", int, None, "pixels per class pattern (None: the dataset's l0 budget)", low=1),
        fraction_param(1.0),
    )

    def incompatibility(self, info, victim):
        missing = missing_budget(self.p.pixels, "l0", info)
        if missing:
            return missing
        pixels, (_, height, width) = self.p.pixels or info.budgets["l0"], info.input_shape
        return f"pixels={pixels} exceeds the {height}x{width} image" if pixels > height * width else None

    def craft(self, train: TensorData, ctx: CraftingContext) -> PoisonedSet:
        pixels = int(resolve_budget(self.p.pixels, "l0", ctx))
        generator = ctx.generator(RANDOM_PATTERN_SALT)
        try:
            locations, values = random_pattern(ctx.info.num_classes, pixels, tuple(train.x.shape[1:]), generator)
        except ValueError as error:
            raise ValueError(f"random-pixels: {error}") from None
        mask = poison_mask(len(train), self.p.fraction, generator, train.device)
        x = train.x.clone()
        index = mask.nonzero().squeeze(1)
        x[index] = stamp(train.x[index], train.y[index], locations, values)
        return PoisonedSet(TensorData(x, train.y), mask, {"locations": locations, "values": values})

    def metrics(self, poison: PoisonedSet, fitted: Fitted, splits: DataSplits, ctx: Context) -> dict:
        locations, values = poison.extras["locations"], poison.extras["values"]
        test, classifier = splits.test, fitted.classifier
        other = (test.y + 1) % len(values)
        return {
            "pattern_acc": classifier.accuracy(stamp(test.x, test.y, locations, values), test.y),
            "pattern_hijack": classifier.accuracy(stamp(test.x, other, locations, values), other),
        }


class LabelFlip(PoisonAttack):
    """Random label flips: a fraction of training labels set to a uniformly random different class.

    Reference: random label noise as in Biggio, Nelson & Laskov, "Support Vector Machines Under
    Adversarial Label Noise", ACML 2011, https://proceedings.mlr.press/v20/biggio11.html (no
    arXiv version); deep networks memorise such labels: Zhang et al., "Understanding deep
    learning requires rethinking generalization", ICLR 2017, https://arxiv.org/abs/1611.03530.
    """

    name = "label-flip"
    params = (fraction_param(0.2),)

    def craft(self, train: TensorData, ctx: CraftingContext) -> PoisonedSet:
        generator = ctx.generator(203)
        mask = poison_mask(len(train), self.p.fraction, generator, train.device)
        index = mask.nonzero().squeeze(1)
        # Adding 1..K-1 modulo K gives every *other* class with equal probability.
        shift = torch.randint(1, ctx.info.num_classes, (len(index),), generator=generator)
        y = train.y.clone()
        y[index] = (y[index] + shift.to(y.device)) % ctx.info.num_classes
        return PoisonedSet(TensorData(train.x, y), mask)


ALL = [Clean, UniformNoise, RandomPixels, LabelFlip]
