"""Goodfellow et al.'s adversarial objective, the baseline LWA compares against.

Goodfellow, Shlens & Szegedy, "Explaining and Harnessing Adversarial Examples", ICLR 2015,
arXiv:1412.6572, Section 6: ``J̃(θ, x, y) = α·J(θ, x, y) + (1 − α)·J(θ, x + ε·sign(∇_x J), y)``.
The LWA paper (arXiv:1511.03034, Section 5) writes it as ``α·D_KL(y||p) + (1 − α)·max D_KL(y||p̃)``.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from benchlab import Param, TrainingDefense, eps_param, missing_budget, norm_param, resolve_budget

from .linearization import NORMS, eval_mode, loss_direction


class Goodfellow(TrainingDefense):
    """Goodfellow's mixed objective alpha·L(x) + (1 − alpha)·L(x + eps·sign ∇L) (l2/l1 variants too).

    Reference: Goodfellow, Shlens, Szegedy, "Explaining and Harnessing Adversarial Examples",
    ICLR 2015, arXiv:1412.6572, Section 6 (alpha = 0.5 there), as compared in Huang et al.,
    arXiv:1511.03034, Tables 1-2. ``norm=linf`` is the paper's sign step; ``l2``/``l1`` take the
    norm's steepest-ascent step instead. The perturbation is recomputed every batch at the current
    network and held constant in the update; clean and perturbed halves share one forward pass.
    """

    name = "goodfellow"
    frameworks = ("torch",)
    params = (
        Param("alpha", float, 0.5, "weight of the clean loss (1 - alpha on the perturbed loss)",
              low=0.0, high=1.0),
        eps_param(),
        norm_param(NORMS, "linf"),
    )

    def incompatibility(self, info, victim):
        return missing_budget(self.p.eps, self.p.norm, info) or super().incompatibility(info, victim)

    def objective(self, model, victim, ctx):
        eps = resolve_budget(self.p.eps, self.p.norm, ctx)
        alpha, norm = self.p.alpha, self.p.norm

        def mixed_loss(model, x, y):
            with eval_mode(model):
                step = loss_direction(model, x, y, norm)
            x_adv = (x + eps * step).clamp(0.0, 1.0)
            logits = model(torch.cat([x, x_adv]))
            clean, adversarial = logits[: len(x)], logits[len(x):]
            loss = alpha * F.cross_entropy(clean, y) + (1 - alpha) * F.cross_entropy(adversarial, y)
            return loss, clean

        return mixed_loss
