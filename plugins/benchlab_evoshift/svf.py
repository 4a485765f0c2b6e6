"""Spatial Value Function transfer (EvoShift Section V-E, eq. 9): reuse a searched pattern elsewhere.

The SVF of a source pattern is a sum of Gaussian point-spread functions centred at its pixel
locations (all classes, all pixels, eq. 9). It is resized bilinearly to the target resolution and
importance-sampled for the target's classes: the locations are drawn without replacement in
proportion to the SVF, so target patterns never overlap. Intensities are carried over from the
source class with the same index (modulo the source class count), averaged or repeated when the
channel counts differ.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from benchlab import CraftingContext, Param, PoisonedSet, TensorData, resolve_budget

from .evoshift import EvoShift, choose_among, pixel_incompatibility, pixel_params
from .patterns import Pattern
from .population import perturb
from .sensitivity import PatternPoison


def spatial_value_function(locations: torch.Tensor, height: int, width: int, sigma: float) -> torch.Tensor:
    """Eq. 9 on the source grid: sum of Gaussian PSFs (std ``sigma`` pixels) at every pattern pixel."""
    rows = torch.arange(height, dtype=torch.float64).view(-1, 1, 1)
    cols = torch.arange(width, dtype=torch.float64).view(1, -1, 1)
    centres = locations.reshape(-1, 2).double()
    squared = (rows - centres[:, 0]) ** 2 + (cols - centres[:, 1]) ** 2  # (H, W, pixels)
    return torch.exp(-squared / (2 * sigma**2)).sum(-1)


def resize(svf: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bilinear resize of an SVF to the target resolution (kept non-negative)."""
    out = F.interpolate(svf[None, None].float(), size=(height, width), mode="bilinear", align_corners=False)
    return out[0, 0].clamp_min(0.0)


def sample_locations(svf: torch.Tensor, classes: int, pixels: int,
                     generator: torch.Generator) -> torch.Tensor:
    """(classes, pixels, 2) distinct (row, col) drawn with probability proportional to ``svf``."""
    height, width = svf.shape
    if classes * pixels > height * width:
        raise ValueError(f"{classes} x {pixels} distinct pixels do not fit in {height}x{width}")
    weights = svf.flatten().double()
    # A floor keeps every position drawable once the mass near the source pixels is used up.
    weights = weights + weights.max().clamp_min(1e-12) * 1e-9
    flat = torch.multinomial(weights, classes * pixels, replacement=False, generator=generator)
    flat = flat.view(classes, pixels)
    return torch.stack((flat // width, flat % width), dim=-1)


def transfer_values(values: torch.Tensor, classes: int, channels: int) -> torch.Tensor:
    """Target intensities (classes, N, channels) from source class k mod K_s's (K_s, N, C_s)."""
    out = values[torch.arange(classes) % len(values)]
    if out.shape[-1] != channels:
        out = out.mean(-1, keepdim=True).expand(-1, -1, channels)
    return out.contiguous()


def transfer_pattern(source: Pattern, source_hw: tuple[int, int], target_shape: tuple[int, int, int],
                     classes: int, sigma: float, generator: torch.Generator) -> Pattern:
    """The whole of Section V-E: SVF of ``source``, resized, sampled for ``classes`` target classes."""
    channels, height, width = target_shape
    svf = resize(spatial_value_function(source.locations, *source_hw, sigma), height, width)
    locations = sample_locations(svf, classes, source.locations.shape[1], generator)
    return Pattern(locations, transfer_values(source.values, classes, channels))


class EvoShiftSVF(PatternPoison):
    """EvoShift transferred by Spatial Value Function sampling from a searched source dataset.

    Reference: Chaudhury, Roy, Mishra, Yamasaki, "Adversarial Training Time Attack Against
    Discriminative and Generative Convolutional Models", IEEE Access 9, 2021,
    doi:10.1109/ACCESS.2021.3101282 -- Section V-E, eq. 9 (CIFAR-10 -> 64x64 ImageNet there).
    Runs (or reuses from the cache) an ``evoshift`` search with the same pixels/popsize/
    generations/subset/epochs on the source training set (loaded from the run's data root),
    then samples the target pattern from its SVF. Metrics ``alpha_s``, ``alpha_n``.
    """

    name = "evoshift-svf"
    params = (
        *pixel_params(),
        Param("source", str, "digits", "source dataset name (searched there, transferred here)", kind="datasets"),
        Param("source_per_class", int, 0, "source training images per class (0 = all)", low=0),
        Param("sigma", float, 1.0, "PSF standard deviation in source pixels", low=1e-3),
        *(p for p in EvoShift.params if p.name in ("popsize", "generations", "subset", "epochs")),
    )
    test_spec = "evoshift-svf:source_per_class=6,popsize=4,generations=1,subset=20,epochs=1"

    def incompatibility(self, info, victim):
        return pixel_incompatibility(self, info)

    def source_pattern(self, pixels: int, ctx: CraftingContext) -> tuple[Pattern, tuple[int, int]]:
        """The best EvoShift pattern on the source dataset (all its classes) and its image size."""
        spec = self.p.source + (f":per_class={self.p.source_per_class}" if self.p.source_per_class else "")
        splits = ctx.create("datasets", spec).load(ctx.data_root, ctx.download)
        source_ctx = CraftingContext(seed=ctx.seed, device=ctx.device, info=splits.info, cache=ctx.cache,
                                     data_root=ctx.data_root, download=ctx.download, registry=ctx.registry)
        search = EvoShift(pixels=pixels, popsize=self.p.popsize, generations=self.p.generations,
                          subset=self.p.subset, epochs=self.p.epochs)
        poison = search.craft(splits.train.to(ctx.device), source_ctx)
        pattern = Pattern(poison.extras["locations"], poison.extras["values"])
        return pattern, tuple(splits.info.input_shape[1:])

    def craft(self, train: TensorData, ctx: CraftingContext) -> PoisonedSet:
        pixels = int(resolve_budget(self.p.pixels, "l0", ctx))
        num_classes = ctx.info.num_classes
        classes = self.p.classes or num_classes
        source, source_hw = self.source_pattern(pixels, ctx)
        pattern = transfer_pattern(source, source_hw, tuple(train.x.shape[1:]), classes, self.p.sigma,
                                   ctx.generator(507))
        mask = choose_among(train.y < classes, self.p.fraction, ctx.generator(508))
        return PoisonedSet(TensorData(perturb(train, mask, pattern), train.y), mask,
                           pattern.extras(num_classes))
