"""Classic training-time defenses, each a :class:`TrainingDefense` overriding as few hooks as possible.

Batch transforms run on the training device with the trainer's CPU generator: small random draws
(offsets, flip masks) are made on the CPU and moved; bulk noise is drawn on the device from a
generator seeded by the trainer's, so runs stay reproducible without host-device copies.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from benchlab import OPTIMIZERS, Param, TrainingDefense

# Learning rate used when ``erm`` switches the optimizer family and no lr is given: an SGD rate
# such as 0.1 makes Adam diverge, and Adam's 1e-3 barely moves SGD.
DEFAULT_LR = {"sgd": 0.05, "adam": 1e-3, "rmsprop": 1e-3}
# Gaussian-noise sigmas of CIFAR-10-C severities 1..5 (Hendrycks & Dietterich 2019).
NOISE_SEVERITY = (0.04, 0.06, 0.08, 0.09, 0.10)
# Bound on the unfolded tensor of the median filter (elements), so 96x96 batches do not exhaust memory.
MEDIAN_CHUNK = 2**25


def device_generator(generator: torch.Generator, device: torch.device) -> torch.Generator:
    """``generator`` itself on the CPU; elsewhere a device generator seeded from it."""
    if device.type == "cpu":
        return generator
    seed = int(torch.randint(2**62, (), generator=generator))
    return torch.Generator(device=device).manual_seed(seed)


class ERM(TrainingDefense):
    """Plain empirical risk minimisation (optionally another optimizer, learning rate or epoch count).

    Reference: Vapnik, "Principles of Risk Minimization for Learning Theory", NeurIPS 1991.
    Switching the optimizer family without an ``lr`` uses that family's default rate (DEFAULT_LR).
    """

    name = "erm"
    trains_generative = True  # a generative victim's own objective is its ERM
    params = (
        Param("optimizer", str, None, "optimizer (default: the victim's recipe)", choices=OPTIMIZERS),
        Param("lr", float, None, "learning rate (default: the victim's, or the new optimizer's)", low=0.0),
        Param("epochs", int, None, "training epochs (default: the victim's recipe)", low=0),
    )

    def recipe(self, victim, ctx):
        base = ctx.recipe(victim)
        lr = self.p.lr
        if lr is None and self.p.optimizer not in (None, base.optimizer):
            lr = DEFAULT_LR[self.p.optimizer]
        return base.override(optimizer=self.p.optimizer, lr=lr, epochs=self.p.epochs)


def insert_dropout(module: nn.Module, p: float) -> int:
    """Replace every nn.Linear below ``module`` by Sequential(Dropout(p), Linear); return the count."""
    count = 0
    for name, child in list(module.named_children()):
        if isinstance(child, nn.Linear):
            setattr(module, name, nn.Sequential(nn.Dropout(p), child))
            count += 1
        else:
            count += insert_dropout(child, p)
    return count


class Dropout(TrainingDefense):
    """Dropout of rate p inserted before every linear layer of the victim.

    Reference: Srivastava, Hinton, Krizhevsky, Sutskever, Salakhutdinov, "Dropout: A Simple Way to
    Prevent Neural Networks from Overfitting", JMLR 15, 2014.
    Generic by construction: any architecture gets ``Dropout(p)`` in front of each ``nn.Linear``
    (so an MLP's input pixels are dropped too, and a transformer's attention projections).
    """

    name = "dropout"
    frameworks = ("torch",)
    params = (Param("p", float, 0.5, "drop probability", low=0.0, high=0.95),)

    def build_model(self, victim, ctx):
        model = super().build_model(victim, ctx)
        if not insert_dropout(model, self.p.p):
            raise ValueError(f"dropout: victim {victim.spec} has no nn.Linear layer to put dropout before")
        return model


class WeightDecay(TrainingDefense):
    """L2 weight decay of strength wd in the optimizer (replacing the victim recipe's value).

    Reference: Krogh, Hertz, "A Simple Weight Decay Can Improve Generalization", NeurIPS 1991.
    """

    name = "weight-decay"
    frameworks = ("torch",)
    params = (Param("wd", float, 5e-4, "weight decay coefficient", low=0.0),)

    def recipe(self, victim, ctx):
        return ctx.recipe(victim, weight_decay=self.p.wd)


def random_crop(x: torch.Tensor, pad: int, padding: str, generator: torch.Generator) -> torch.Tensor:
    """Pad each image by ``pad`` and crop back at an independent random offset (one gather)."""
    n, _, h, w = x.shape
    padded = F.pad(x, (pad,) * 4, mode="reflect" if padding == "reflect" else "constant")
    offsets = torch.randint(0, 2 * pad + 1, (2, n), generator=generator).to(x.device)
    rows = offsets[0, :, None] + torch.arange(h, device=x.device)  # (n, h)
    cols = offsets[1, :, None] + torch.arange(w, device=x.device)  # (n, w)
    batch = torch.arange(n, device=x.device)[:, None, None]
    # Advanced indices around a slice: the result is (n, h, w, c).
    return padded[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2).contiguous()


class Augment(TrainingDefense):
    """Random-crop (pad and shift) and optional horizontal-flip data augmentation.

    Reference: He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", arXiv:1512.03385
    (4-pixel pad, random crop, horizontal flip on CIFAR). Flip is off by default: digits are not
    mirror-symmetric. On scikit-learn victims one augmented copy is added to the training set.
    """

    name = "augment"
    params = (
        Param("pad", int, 2, "maximum shift in pixels", low=0, high=16),
        Param("padding", str, "zero", "border fill before cropping", choices=("zero", "reflect")),
        Param("flip", bool, False, "also flip horizontally with probability 1/2"),
    )

    def incompatibility(self, info, victim):
        if self.p.padding == "reflect" and self.p.pad >= min(info.input_shape[1:]):
            size = "x".join(map(str, info.input_shape[1:]))
            return f"augment: reflect padding of {self.p.pad} px needs images larger than {size}"
        return super().incompatibility(info, victim)

    def batch_transform(self, ctx):
        pad, padding, flip = self.p.pad, self.p.padding, self.p.flip

        def augment(x, y, generator):
            if pad:
                x = random_crop(x, pad, padding, generator)
            if flip:
                mask = torch.rand(len(x), generator=generator).to(x.device) < 0.5
                x = torch.where(mask[:, None, None, None], x.flip(-1), x)
            return x, y

        return augment


def median_filter(x: torch.Tensor, size: int) -> torch.Tensor:
    """Per-channel ``size`` x ``size`` median (replicated borders); differentiable, batched via unfold."""
    n, c, h, w = x.shape
    pad = size // 2
    chunk = max(1, MEDIAN_CHUNK // (c * h * w * size * size))
    out = []
    for part in x.split(chunk):
        patches = F.unfold(F.pad(part, (pad,) * 4, mode="replicate"), size)  # (b, c*size*size, h*w)
        out.append(patches.view(len(part), c, size * size, h, w).median(dim=2).values)
    return torch.cat(out)


class MedianFilter(TrainingDefense):
    """Median smoothing of every input (k x k), at training and at test time.

    Reference: Xu, Evans, Qi, "Feature Squeezing: Detecting Adversarial Examples in Deep Neural
    Networks", NDSS 2018, arXiv:1704.01155 (median smoothing squeezer).
    """

    name = "median-filter"
    params = (Param("size", int, 3, "filter window side (odd)", choices=(3, 5, 7)),)

    def input_transform(self, ctx):
        size = self.p.size
        return lambda x: median_filter(x, size)


class GaussianNoise(TrainingDefense):
    """Gaussian-noise augmentation: N(0, sigma^2) added to training batches, clipped to [0, 1].

    Reference: Hendrycks, Dietterich, "Benchmarking Neural Network Robustness to Common Corruptions
    and Perturbations", ICLR 2019, arXiv:1903.12261 -- severities 1..5 are CIFAR-10-C's Gaussian
    noise sigmas (0.04, 0.06, 0.08, 0.09, 0.10); an explicit ``sigma`` overrides the severity.
    """

    name = "gaussian-noise"
    params = (
        Param("severity", int, 3, "CIFAR-10-C severity 1..5", low=1, high=5),
        Param("sigma", float, None, "noise standard deviation (overrides severity)", low=0.0),
    )

    @property
    def sigma(self) -> float:
        return self.p.sigma if self.p.sigma is not None else NOISE_SEVERITY[self.p.severity - 1]

    def batch_transform(self, ctx):
        sigma = self.sigma

        def add_noise(x, y, generator):
            noise = torch.randn(x.shape, generator=device_generator(generator, x.device), device=x.device)
            return (x + sigma * noise).clamp_(0.0, 1.0), y

        return add_noise


ALL = [ERM, Dropout, WeightDecay, Augment, MedianFilter, GaussianNoise]
