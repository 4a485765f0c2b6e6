"""DeepFool, batched: every still-correct input of a chunk takes its linearised step at once.

Moosavi-Dezfooli, Fawzi & Frossard, "DeepFool: a simple and accurate method to fool deep neural
networks", CVPR 2016, https://arxiv.org/abs/1511.04599, Algorithm 2 (multiclass, l2). At the
iterate x_i of an input of label y, for every other class k:

    w'_k = ∇f_k(x_i) − ∇f_y(x_i),   f'_k = f_k(x_i) − f_y(x_i),
    l̂ = argmin_k |f'_k| / ‖w'_k‖₂,  r_i = |f'_l̂| / ‖w'_l̂‖₂² · w'_l̂,

and x_{i+1} = clip(x_i + r_i, 0, 1), the box of valid images. As in the paper (Sec. 3.3 and its
reference code) the overshoot multiplies the total perturbation: the candidate
x + (1 + overshoot)·(x_i − x), clipped to [0, 1], is what is tested for misclassification and
returned. These are the semantics of ``ta-deepfool`` (torchattacks' per-image loop with the
overshoot moved to the total), computed for the whole batch per step: the Jacobian rows come from
one backward pass per class over the batch instead of one per class per image.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from benchlab import TINY, Classifier, Context, EvasionAttack, Param, chunks


def class_gradients(model: Classifier, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (N, K) at ``x`` and their input gradients (N, K, *x.shape[1:]), one backward per class.

    Summing a class's logit over the batch gives every example its own gradient, since examples do
    not interact in an eval-mode forward pass.
    """
    with torch.enable_grad():  # the runner may call attacks under no_grad
        x = x.detach().clone().requires_grad_(True)
        logits = model.logits(x)
        rows = [torch.autograd.grad(logits[:, k].sum(), x, retain_graph=k + 1 < logits.shape[1])[0]
                for k in range(logits.shape[1])]
    return logits.detach(), torch.stack(rows, dim=1)


class DeepFool(EvasionAttack):
    """DeepFool, batched: minimal l2 perturbation by iterated linearised decision boundaries.

    Reference: Moosavi-Dezfooli, Fawzi & Frossard, "DeepFool: a simple and accurate method to fool
    deep neural networks", CVPR 2016, https://arxiv.org/abs/1511.04599 (Algorithm 2, multiclass,
    l2; overshoot on the total perturbation, Sec. 3.3). Same outputs as ``ta-deepfool`` up to float
    rounding, for a whole chunk per step. Inputs already misclassified are returned unchanged.
    """

    name = "deepfool"
    params = (
        Param("steps", int, 50, "maximum number of linearised steps", low=1),
        Param("overshoot", float, 0.02, "the returned perturbation is (1 + overshoot) times the total", low=0.0),
    )
    minimal_norm: ClassVar[bool] = True
    test_spec = "deepfool:steps=10"

    @property
    def norm(self) -> str:
        return "l2"

    def perturb(self, model: Classifier, x: torch.Tensor, y: torch.Tensor, ctx: Context) -> torch.Tensor:
        parts = [self.perturb_chunk(model, x[s].to(ctx.device), y[s].to(ctx.device))
                 for s in ctx.progress.steps(chunks(len(x)), "batch")]
        return torch.cat(parts).to(x.device) if parts else x.clone()

    def overshot(self, x: torch.Tensor, iterates: torch.Tensor) -> torch.Tensor:
        return (x + (1 + self.p.overshoot) * (iterates - x)).clamp(0.0, 1.0)

    def perturb_chunk(self, model: Classifier, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        iterates = x.clone()
        for _ in range(self.p.steps):
            with torch.no_grad():
                active = (model.logits(self.overshot(x, iterates)).argmax(1) == y).nonzero().flatten()
            if len(active) == 0:
                break
            iterates[active] = self.step(model, iterates[active], y[active])
        return self.overshot(x, iterates).detach()

    @staticmethod
    def step(model: Classifier, iterate: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One linearised step of Algorithm 2 for each input; inputs misclassified at the (not yet
        overshot) iterate stay where they are."""
        logits, grads = class_gradients(model, iterate)
        rows = torch.arange(len(y), device=y.device)
        f_diff = logits - logits[rows, y].unsqueeze(1)  # f'_k, (N, K)
        w_diff = grads - grads[rows, y].unsqueeze(1)  # w'_k, (N, K, C, H, W)
        # TINY keeps a flat direction (w'_k = 0) from producing NaN: its step is then zero.
        w_norm = w_diff.flatten(2).norm(dim=2).clamp_min(TINY)
        ratio = (f_diff.abs() / w_norm).scatter(1, y.unsqueeze(1), float("inf"))  # the true class is no target
        closest = ratio.argmin(1)
        scale = f_diff[rows, closest].abs() / w_norm[rows, closest] ** 2
        step = scale.view(-1, *([1] * (iterate.ndim - 1))) * w_diff[rows, closest]
        still_correct = (logits.argmax(1) == y).view(-1, *([1] * (iterate.ndim - 1)))
        return torch.where(still_correct, (iterate + step).clamp(0.0, 1.0), iterate)


ALL = [DeepFool]
