"""``fast-at``: "fast is better than free" adversarial training, FGSM from a random start."""

from __future__ import annotations

from torch.nn import functional as F

from benchlab import Param, TrainingDefense, in_ball, missing_budget, resolve_budget

from .inner import ascend, budget_params

# The paper's FGSM step, as a multiple of eps (Section 4.1: α = 1.25ε).
STEP_RATIO = 1.25


class FastAdversarialTraining(TrainingDefense):
    """Fast adversarial training: one FGSM step of 1.25·eps from a uniform random point of the eps-ball.

    Reference: Wong, Rice & Kolter, "Fast is better than free: Revisiting adversarial training",
    ICLR 2020, arXiv:2001.03994, Algorithm 3: ``δ ~ U(-ε, ε)``, ``δ ← δ + α·sign(∇_δ ℓ(f(x+δ), y))``,
    ``δ ← clip(δ, -ε, ε)``, then ``θ ← θ - ∇_θ ℓ(f(x+δ), y)``, with α = 1.25ε (Section 4.1); x+δ is
    clipped to the image range [0, 1] as in the authors' implementation. ``norm=l2`` starts
    uniformly in the l2 ball and takes a normalised-gradient step.

    The perturbation is crafted in train mode, as the authors' implementation does, so one step
    costs two forward-backward passes. The paper's cyclic learning rate and mixed precision are
    the recipe's business here (``schedule``, ``precision``); it trains 15 epochs on CIFAR-10.
    """

    name = "fast-at"
    frameworks = ("torch",)
    params = (
        *budget_params(),
        Param("step_size", float, None, "FGSM step length (None: 1.25 * eps, the paper's α)", low=0.0),
    )
    test_spec = "fast-at:eps=0.1"
    salt = 2020

    def incompatibility(self, info, victim):
        return missing_budget(self.p.eps, self.p.norm, info) or super().incompatibility(info, victim)

    def objective(self, model, victim, ctx):
        norm = self.p.norm
        eps = resolve_budget(self.p.eps, norm, ctx)
        step_size = self.p.step_size if self.p.step_size is not None else STEP_RATIO * eps
        generator = ctx.generator(salt=self.salt)

        def fgsm_loss(model, x, y):
            start = (x + in_ball(x.shape, norm, eps, generator).to(x.device, x.dtype)).clamp(0.0, 1.0)
            x_adv = ascend(lambda z: F.cross_entropy(model(z), y), x, start, norm, eps, 1, step_size)
            logits = model(x_adv)
            return F.cross_entropy(logits, y), logits

        return fgsm_loss
