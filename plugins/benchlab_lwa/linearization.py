"""The linearised network of LWA: batched softmax Jacobians and the paper's closed-form perturbations.

Huang, Xu, Schuurmans & Szepesvári, "Learning with a Strong Adversary", arXiv:1511.03034.

* Section 2, Propositions 3/4 (:func:`minimal_linear_perturbation`): with ``g(x + r) ≈ α + T r``
  (``α`` the softmax output, ``T = ∂α/∂x``), the smallest ``r`` making class ``j`` beat the label
  ``y`` has norm ``(α_y − α_j) / ||T_j − T_y||_*`` and points along the dual-norm maximiser of
  ``w_j = T_j − T_y``; the smallest over ``j ≠ y`` (index ``I``) flips the linearised prediction.
* Section 6.1.1 (:func:`loss_direction`): the loss-gradient direction solved per norm
  (l2: ∇/||∇||₂, linf: sign ∇, l1: the largest coordinate).
* Section 6.1.2 (:func:`alpha_direction`): the misclassification rule ``r* = c r_I / ||r_I||``.

Every function works on a whole batch; per-example norms run over all non-batch dimensions, so
the same code serves raw images (LWA, the attacks) and representation-layer features (LWA_Rep).
The later version of the paper prints the l2 case of Proposition 3 as ``gap/||w||₂ · w``; that
vector's norm is ``gap``, contradicting the optimal value the proposition states, so we use the
workshop version's ``gap/||w||₂² · w`` (norm ``gap/||w||₂``), the two versions' common statement.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager

import torch
from torch import nn
from torch.nn import functional as F

from benchlab import TINY, per_example

Forward = Callable[[torch.Tensor], torch.Tensor]  # inputs -> logits
NORMS = ("l2", "linf", "l1")
RULES = ("likelihood", "misclassification")


def dual_norm(w: torch.Tensor, norm: str) -> torch.Tensor:
    """``||w||_*`` over the last dimension: l2 ↔ l2, linf ↔ l1, l1 ↔ linf."""
    if norm == "l2":
        return w.norm(dim=-1)
    if norm == "linf":
        return w.abs().sum(-1)
    if norm == "l1":
        return w.abs().amax(-1)
    raise ValueError(f"unsupported norm {norm!r}; choose one of {', '.join(NORMS)}")


def unit_direction(w: torch.Tensor, norm: str) -> torch.Tensor:
    """Per example, the ``d`` with ``||d|| = 1`` maximising ``<w, d>`` (= ``||w||_*``); any shape (N, ...).

    l2: ``w/||w||₂``; linf: ``sign(w)``; l1: ``sign(w_k) e_k`` on the largest ``|w_k|``.
    A zero ``w`` gives a zero direction (nothing to follow).
    """
    flat = w.flatten(1)
    if norm == "l2":
        out = flat / flat.norm(dim=1, keepdim=True).clamp_min(TINY)
    elif norm == "linf":
        out = flat.sign()
    elif norm == "l1":
        k = flat.abs().argmax(1, keepdim=True)
        out = torch.zeros_like(flat).scatter_(1, k, flat.gather(1, k).sign())
    else:
        raise ValueError(f"unsupported norm {norm!r}; choose one of {', '.join(NORMS)}")
    return out.view_as(w)


def softmax_jacobian(forward: Forward, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``α = softmax(forward(x))`` (N, K) and ``T = ∂α/∂x`` (N, K, D) from K backward passes.

    Each pass differentiates ``Σ_n α_{n,k}`` for the whole batch: example n's output depends on
    example n's input only (eval mode), so the gradient's row n is ``∂α_{n,k}/∂x_n``.
    """
    with torch.enable_grad():  # callers may run under no_grad
        x = x.detach().requires_grad_(True)
        alpha = forward(x).softmax(1)
        k = alpha.shape[1]
        rows = [torch.autograd.grad(alpha[:, j].sum(), x, retain_graph=j < k - 1)[0].flatten(1)
                for j in range(k)]
    return alpha.detach(), torch.stack(rows, 1)


def minimal_linear_perturbation(alpha: torch.Tensor, jacobian: torch.Tensor, y: torch.Tensor, norm: str):
    """Algorithm 1: ``(r_I, I, ||r_I||)`` per example, from Proposition 3 then Proposition 4.

    ``alpha`` (N, K), ``jacobian`` (N, K, D), ``y`` (N,). The gap ``α_y − α_j`` is clamped at 0: an
    example whose class j already wins needs no perturbation (size 0) to be misclassified.
    """
    rows = torch.arange(len(y), device=y.device)
    w = jacobian - jacobian[rows, y].unsqueeze(1)  # (N, K, D): T_j - T_y
    gap = (alpha[rows, y].unsqueeze(1) - alpha).clamp_min(0.0)  # (N, K)
    size = gap / dual_norm(w, norm).clamp_min(TINY)  # Proposition 3: ||r_(j)*||
    size[rows, y] = float("inf")
    index = size.argmin(1)  # Proposition 4: I = argmin_j ||r_(j)*||
    w_index = w[rows, index]
    r = per_example(size[rows, index], w_index) * unit_direction(w_index, norm)
    return r, index, size[rows, index]


def alpha_direction(forward: Forward, x: torch.Tensor, y: torch.Tensor, norm: str) -> torch.Tensor:
    """Unit-norm ``r_I/||r_I||`` of Algorithm 1 (Adv_Alpha, Section 6.1.2), shaped like ``x``.

    Uses the direction of ``w_I`` itself so that examples with a zero gap still get one.
    """
    alpha, jacobian = softmax_jacobian(forward, x)
    y = y.to(alpha.device)
    _, index, _ = minimal_linear_perturbation(alpha, jacobian, y, norm)
    rows = torch.arange(len(y), device=y.device)
    w_index = jacobian[rows, index] - jacobian[rows, y]
    return unit_direction(w_index, norm).view_as(x)


def loss_gradient(forward: Forward, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``∂ℓ/∂x`` of the summed cross-entropy (summed: each row is that example's own gradient)."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        logits = forward(x)
        loss = F.cross_entropy(logits, y.to(logits.device), reduction="sum")
        (grad,) = torch.autograd.grad(loss, x)
    return grad


def loss_direction(forward: Forward, x: torch.Tensor, y: torch.Tensor, norm: str) -> torch.Tensor:
    """Unit-norm Adv_Loss direction (Section 6.1.1): the norm's steepest ascent of the loss."""
    return unit_direction(loss_gradient(forward, x, y), norm)


def sign_direction(forward: Forward, x: torch.Tensor, y: torch.Tensor, norm: str) -> torch.Tensor:
    """``sign(∇ℓ)`` rescaled to unit ``norm`` (Adv_Loss_Sign): linf gives FGSM's sign step itself."""
    signs = loss_gradient(forward, x, y).sign()
    if norm == "linf":
        return signs
    if norm != "l2":
        raise ValueError(f"adv-loss-sign measures its budget in linf or l2, not {norm!r}")
    return signs / per_example(signs.flatten(1).norm(dim=1).clamp_min(TINY), signs)


def adversarial_direction(forward: Forward, x: torch.Tensor, y: torch.Tensor, rule: str, norm: str):
    """The pseudo-sample direction of Algorithm 2/3: likelihood (6.1.1) or misclassification (6.1.2)."""
    if rule == "likelihood":
        return loss_direction(forward, x, y, norm)
    if rule == "misclassification":
        return alpha_direction(forward, x, y, norm)
    raise ValueError(f"unknown rule {rule!r}; choose one of {', '.join(RULES)}")


@contextmanager
def eval_mode(module: nn.Module):
    """Craft perturbations in eval mode (no dropout noise, no BatchNorm statistics updates)."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)
