"""Baseline evasion attacks: the identity reference, a random-noise control, FGSM and PGD.

All attacks work on chunks of :data:`norms.CHUNK` examples on the context's device, clip to
[0, 1] after every step, and return a tensor on the device the inputs came from. Gradients are
taken with ``torch.autograd.grad`` with respect to the input only, so model parameters never
accumulate ``.grad`` and the model's train/eval mode is left untouched.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from benchlab import (
    Classifier,
    Context,
    EvasionAttack,
    Param,
    chunks,
    eps_param,
    in_ball,
    missing_budget,
    norm_param,
    on_sphere,
    project,
    resolve_budget,
    steepest_direction,
)


def loss_gradient(model: Classifier, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Gradient of the summed cross-entropy w.r.t. ``x`` (summed, so it is per-example, not /N)."""
    with torch.enable_grad():  # the runner may call attacks under no_grad
        x = x.detach().clone().requires_grad_(True)
        logits = model.logits(x)
        loss = F.cross_entropy(logits, y.to(logits.device), reduction="sum")
        (grad,) = torch.autograd.grad(loss, x)
    return grad


class BudgetedAttack(EvasionAttack):
    """Shared plumbing for attacks with a (norm, eps) threat model."""

    params = (norm_param(), eps_param())
    # Separates this attack's random stream from others drawn with the same cell seed.
    salt: int = 100

    def eps(self, ctx: Context) -> float:
        return resolve_budget(self.p.eps, self.p.norm, ctx)

    def incompatibility(self, info, victim):
        return missing_budget(self.p.eps, self.p.norm, info) or super().incompatibility(info, victim)

    def perturb(self, model: Classifier, x: torch.Tensor, y: torch.Tensor, ctx: Context) -> torch.Tensor:
        eps = self.eps(ctx)
        # One generator for the whole input, drawn in chunk order: reproducible for a fixed seed.
        generator = ctx.generator(self.salt)
        parts = [self.perturb_chunk(model, x[s].to(ctx.device), y[s].to(ctx.device), eps, generator)
                 for s in ctx.progress.steps(chunks(len(x)), "batch")]
        return torch.cat(parts).to(x.device) if parts else x.clone()

    def perturb_chunk(self, model, x, y, eps: float, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError


class NoAttack(EvasionAttack):
    """No attack: returns the test inputs unchanged (the clean reference column).

    Reference: none; this is the clean-accuracy baseline every attack is compared against.
    """

    name = "none"
    needs_gradients = False

    def perturb(self, model, x, y, ctx):
        return x.clone()


class RandomNoise(BudgetedAttack):
    """Random perturbation of exactly the budget (random signs for linf, random direction for l2).

    Reference: the random-noise control of Fawzi, Moosavi-Dezfooli & Frossard, "Robustness of
    classifiers: from adversarial to random noise", NeurIPS 2016, https://arxiv.org/abs/1608.08967.
    Clipping to [0, 1] can only shrink the perturbation, so it stays within the budget.
    """

    name = "random-noise"
    needs_gradients = False

    salt = 101

    def perturb_chunk(self, model, x, y, eps, generator):
        noise = on_sphere(x.shape, self.p.norm, eps, generator).to(x.device)
        return (x + noise).clamp(0.0, 1.0)


class FGSM(BudgetedAttack):
    """Fast gradient sign method: one eps-step along sign(∇loss) (linf) or ∇loss/||∇loss||₂ (l2).

    Reference: Goodfellow, Shlens & Szegedy, "Explaining and Harnessing Adversarial Examples",
    ICLR 2015, https://arxiv.org/abs/1412.6572. The l2 variant is the "fast gradient method".
    """

    name = "fgsm"

    def perturb_chunk(self, model, x, y, eps, generator):
        grad = loss_gradient(model, x, y)
        return (x + eps * steepest_direction(grad, self.p.norm)).clamp(0.0, 1.0)


class PGD(BudgetedAttack):
    """Projected gradient descent on the loss (linf or l2 ball), with a seeded random start.

    Reference: Madry, Makelov, Schmidt, Tsipras & Vladu, "Towards Deep Learning Models Resistant
    to Adversarial Attacks", ICLR 2018, https://arxiv.org/abs/1706.06083. Each step moves along
    the steepest-ascent direction of the norm, projects onto the eps-ball around the clean input
    and clips to [0, 1]; the last iterate is returned.
    """

    name = "pgd"
    params = (
        *BudgetedAttack.params,
        Param("steps", int, 10, "number of gradient steps", low=1),
        Param("step_size", float, None, "step length (None: 2.5 * eps / steps)", low=0.0),
        Param("random_start", bool, True, "start from a uniform random point in the eps-ball"),
    )

    salt = 102

    def perturb_chunk(self, model, x, y, eps, generator):
        norm = self.p.norm
        step = self.p.step_size if self.p.step_size is not None else 2.5 * eps / self.p.steps
        x_adv = x.clone()
        if self.p.random_start:
            x_adv = (x + in_ball(x.shape, norm, eps, generator).to(x.device)).clamp(0.0, 1.0)
        for _ in range(self.p.steps):
            grad = loss_gradient(model, x_adv, y)
            x_adv = x_adv + step * steepest_direction(grad, norm)
            # Projecting then clipping stays in the ball: clipping only moves pixels towards x.
            x_adv = (x + project(x_adv - x, norm, eps)).clamp(0.0, 1.0)
        return x_adv.detach()


ALL = [NoAttack, RandomNoise, FGSM, PGD]
