"""``trades``: clean cross-entropy plus β times the KL divergence to the worst nearby prediction."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from benchlab import Param, TrainingDefense, missing_budget, resolve_budget

from .inner import ascend, budget_params, inner_step, model_mode


def kl_to(clean_log_p: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of KL(p_clean || softmax(logits)), ``p_clean`` given as log-probabilities."""
    return F.kl_div(F.log_softmax(logits, dim=1), clean_log_p, reduction="batchmean", log_target=True)


class TRADES(TrainingDefense):
    """TRADES: minimise CE(f(x), y) + β·max KL(f(x) || f(x')) over x' in the eps-ball.

    Reference: Zhang, Yu, Jiao, Xing, El Ghaoui & Jordan, "Theoretically Principled Trade-off
    between Robustness and Accuracy", ICML 2019, arXiv:1901.08573, Algorithm 1 and eq. (5):
    x' starts at ``x + 0.001·N(0, I)`` and takes K projected sign-gradient steps on
    ``KL(f(x) || f(x'))`` (f(x) held fixed); θ then descends on ``CE(f(x), y) + β·KL(f(x) || f(x'))``
    with gradients through both terms. β = 1/λ = 6 is the paper's choice on MNIST and CIFAR-10
    (MNIST: eps 0.3, K = 40, step 0.01; CIFAR-10: eps 0.031, K = 10, step 0.007).

    Choices where the paper is silent: the step size defaults to 2.5·eps/steps (0.0078 for the
    CIFAR-10 setting); ``norm=l2`` takes normalised-gradient steps; x' is crafted with the model in
    eval mode, as the authors' implementation does, and the clean and adversarial batches then run
    through separate train-mode forward passes (as there, so BatchNorm sees each batch alone).
    """

    name = "trades"
    frameworks = ("torch",)
    params = (
        *budget_params(),
        Param("beta", float, 6.0, "weight of the KL robustness term (the paper's 1/λ)", low=0.0),
        Param("steps", int, 10, "steps of the inner KL maximisation (the paper's K)", low=1),
        Param("step_size", float, None, "inner step length (None: 2.5 * eps / steps)", low=0.0),
        Param("init_std", float, 0.001, "standard deviation of the Gaussian start around x", low=0.0),
    )
    test_spec = "trades:eps=0.1,steps=2"
    salt = 2019

    def incompatibility(self, info, victim):
        return missing_budget(self.p.eps, self.p.norm, info) or super().incompatibility(info, victim)

    def objective(self, model, victim, ctx):
        norm, steps, beta = self.p.norm, self.p.steps, self.p.beta
        eps = resolve_budget(self.p.eps, norm, ctx)
        step_size = inner_step(self.p.step_size, eps, steps)
        generator = ctx.generator(salt=self.salt)

        def trades_loss(model, x, y):
            noise = self.p.init_std * torch.randn(x.shape, generator=generator)
            start = (x + noise.to(x.device, x.dtype)).clamp(0.0, 1.0)
            with model_mode(model, training=False), torch.no_grad():
                reference = F.log_softmax(model(x), dim=1)
            with model_mode(model, training=False):
                x_adv = ascend(lambda z: kl_to(reference, model(z)), x, start, norm, eps, steps, step_size)
            logits = model(x)
            robust = kl_to(F.log_softmax(logits, dim=1), model(x_adv))
            return F.cross_entropy(logits, y) + beta * robust, logits

        return trades_loss
