"""``adv-poison``: adversarial examples as availability poisons (Fowl et al., NeurIPS 2021)."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from benchlab import (
    Context,
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
    in_ball,
    missing_budget,
    poison_mask,
    resolve_budget,
)

from .surrogate import SurrogateTrainer, accuracy, build_surrogate, surrogate_params

TARGETS = ("shift", "none")
NOISE_CHUNK = 1024


class AdversarialPoison(PoisonAttack):
    """Adversarial poisoning: class-targeted (or untargeted) PGD noise against a clean-trained model.

    Reference: Fowl, Goldblum, Chiang, Geiping, Czaja & Goldstein, "Adversarial Examples Make Strong
    Poisons", NeurIPS 2021, arXiv:2106.10807, Section 3: a crafting model f is trained on the clean
    training split, then every training image gets δ = argmin_{||δ||∞ ≤ eps} L(f(x + δ), t(y)) by
    ``steps`` of signed PGD (eq. 2, the class-targeted variant), t a fixed permutation of the
    classes, here t(y) = (y + ``shift``) mod K; ``target=none`` maximises L(f(x + δ), y) instead
    (eq. 1, untargeted). Labels are kept: the victim learns t(y)'s non-robust features as class y.
    The crafting context sees only the training split; the model is trained inside ``craft``.
    """

    name = "adv-poison"
    params = (
        eps_param(),
        Param("target", str, "shift", "class-targeted t(y) = (y + shift) mod K, or untargeted", choices=TARGETS),
        Param("shift", int, 1, "class permutation offset of the targeted variant", low=1),
        Param("steps", int, 100, "PGD steps", low=1),
        Param("step_size", float, None, "PGD step size (None: 2.5 * eps / steps)", low=0.0),
        Param("epochs", int, 10, "training epochs of the crafting model on the clean split", low=1),
        fraction_param(1.0),
        *surrogate_params(),
    )
    test_spec = "adv-poison:steps=3,epochs=1"
    declared_metrics = (
        # Directions from the defender's side: a more successful craft is worse for the defense.
        Metric("craft_model_acc", higher_is_better=False, help="adv-poison: crafting model's clean training accuracy"),
        Metric("craft_fooled", higher_is_better=False,
               help="adv-poison: share of poisoned training images the crafting model assigns to t(y) "
                    "(untargeted: to any wrong class)"),
    )

    def incompatibility(self, info, victim):
        if self.p.shift % info.num_classes == 0:
            return f"adv-poison: shift={self.p.shift} maps every class of {info.name!r} to itself"
        return missing_budget(self.p.eps, "linf", info)

    def craft(self, train: TensorData, ctx: Context) -> PoisonedSet:
        eps = resolve_budget(self.p.eps, "linf", ctx)
        step = self.p.step_size if self.p.step_size is not None else 2.5 * eps / self.p.steps
        generator = ctx.generator(2106)
        x, y = train.x.to(ctx.device), train.y.to(ctx.device)
        num_classes = ctx.info.num_classes
        model = build_surrogate(self.p.surrogate, ctx.info.input_shape, num_classes, generator).to(ctx.device)
        SurrogateTrainer(model, self.p.lr, self.p.batch_size, generator).epochs(x, y, self.p.epochs)
        model.requires_grad_(False)
        targeted = self.p.target == "shift"
        goal = (y + self.p.shift) % num_classes if targeted else y
        # Descend the loss towards t(y), or ascend it away from y: one signed step rule for both.
        sign = -1.0 if targeted else 1.0
        delta = in_ball(x.shape, "linf", eps, generator).to(x.device, x.dtype)
        for s in ctx.progress.steps(chunks(len(x), NOISE_CHUNK), "batch"):
            d = delta[s]
            for _ in range(self.p.steps):
                d.requires_grad_(True)
                loss = F.cross_entropy(model((x[s] + d).clamp(0.0, 1.0)), goal[s], reduction="sum")
                (grad,) = torch.autograd.grad(loss, d)
                d = (d.detach() + sign * step * grad.sign()).clamp(-eps, eps)
            delta[s] = d
        adversarial = (x + delta).clamp(0.0, 1.0)
        mask = poison_mask(len(x), self.p.fraction, generator, x.device)
        poisoned = torch.where(mask.view(-1, 1, 1, 1), adversarial, x)
        with torch.no_grad():
            pred = torch.cat([model(adversarial[s]).argmax(1) for s in chunks(len(x))])
        fooled = (pred == goal) if targeted else (pred != y)
        extras = {"model_acc": torch.tensor(accuracy(model, x, y)),
                  "fooled": fooled[mask].float().mean() if mask.any() else torch.tensor(0.0)}
        return PoisonedSet(TensorData(poisoned.to(train.device), train.y), mask.to(train.device), extras)

    def metrics(self, poison: PoisonedSet, fitted: Fitted, splits: DataSplits, ctx: Context) -> dict:
        return {"craft_model_acc": float(poison.extras["model_acc"]), "craft_fooled": float(poison.extras["fooled"])}
