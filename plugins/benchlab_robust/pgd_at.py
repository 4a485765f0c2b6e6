"""``pgd-at``: adversarial training on projected-gradient-descent examples (Madry et al.)."""

from __future__ import annotations

from torch.nn import functional as F

from benchlab import Param, TrainingDefense, in_ball, missing_budget, resolve_budget

from .inner import ascend, budget_params, inner_step, model_mode


class PGDAdversarialTraining(TrainingDefense):
    """PGD adversarial training: minimise the cross-entropy of the worst case PGD finds in the eps-ball.

    Reference: Madry, Makelov, Schmidt, Tsipras & Vladu, "Towards Deep Learning Models Resistant to
    Adversarial Attacks", ICLR 2018, arXiv:1706.06083, eq. (2.1): ``min_θ E max_{δ∈S} L(θ, x+δ, y)``,
    the inner maximum approximated by PGD (Section 2.1: ``x^{t+1} = Π_{x+S}(x^t + α sgn ∇_x L)``,
    from a uniform random point of the ball), and the outer minimum by the recipe's optimizer on
    the adversarial examples alone. ``norm=l2`` takes the normalised-gradient step instead of the
    sign. Paper settings: MNIST eps 0.3, 40 steps of 0.01; CIFAR-10 eps 8/255, 7 steps of 2/255.

    Choices where the paper is silent: the step size defaults to 2.5·eps/steps; the perturbation is
    crafted with the model in eval mode (no dropout noise, BatchNorm statistics untouched by the
    attack's passes), then the update runs in train mode; eps defaults to the matrix budget.
    """

    name = "pgd-at"
    frameworks = ("torch",)
    params = (
        *budget_params(),
        Param("steps", int, 10, "PGD steps of the inner maximisation", low=1),
        Param("step_size", float, None, "PGD step length (None: 2.5 * eps / steps)", low=0.0),
        Param("random_start", bool, True, "start each PGD from a uniform random point of the eps-ball"),
    )
    test_spec = "pgd-at:eps=0.1,steps=2"
    salt = 2018

    def incompatibility(self, info, victim):
        return missing_budget(self.p.eps, self.p.norm, info) or super().incompatibility(info, victim)

    def objective(self, model, victim, ctx):
        norm, steps = self.p.norm, self.p.steps
        eps = resolve_budget(self.p.eps, norm, ctx)
        step_size = inner_step(self.p.step_size, eps, steps)
        generator = ctx.generator(salt=self.salt)

        def adversarial_loss(model, x, y):
            start = x
            if self.p.random_start:
                start = (x + in_ball(x.shape, norm, eps, generator).to(x.device, x.dtype)).clamp(0.0, 1.0)
            with model_mode(model, training=False):
                x_adv = ascend(lambda z: F.cross_entropy(model(z), y), x, start, norm, eps, steps, step_size)
            logits = model(x_adv)
            return F.cross_entropy(logits, y), logits

        return adversarial_loss
