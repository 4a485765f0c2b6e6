"""Adv_Loss and Adv_Loss_Sign: one step along the loss gradient solved per norm (or searched).

Huang, Xu, Schuurmans & Szepesvári, "Learning with a Strong Adversary", arXiv:1511.03034,
Section 6.1.1: maximising the linearised loss under ``||r|| ≤ c`` gives ``c·∇/||∇||₂`` (l2),
``c·sign(∇)`` (linf — FGSM) and ``c·sign(∇_k)·e_k`` on the largest coordinate (l1). The paper's
Adv_Loss_Sign is the sign direction; its tables measure every attack in l2, so ``adv-loss-sign``
also accepts ``norm=l2``: the sign vector rescaled to l2 length c.
"""

from __future__ import annotations

from benchlab import eps_param, norm_param

from .attack_base import DirectionalAttack, MinimalDirectionalAttack
from .linearization import loss_direction, sign_direction


def _loss_direction(self, model, x, y):
    return loss_direction(model.logits, x, y, self.p.norm)


def _sign_direction(self, model, x, y):
    return sign_direction(model.logits, x, y, self.p.norm)


SIGN_NORM = norm_param(("linf", "l2"), "linf")


class AdvLoss(DirectionalAttack):
    """Adv_Loss: step c along the loss gradient solved for the norm (l2: ∇/||∇||, linf: sign, l1: e_k).

    Reference: Huang, Xu, Schuurmans, Szepesvári, "Learning with a Strong Adversary",
    arXiv:1511.03034, Section 6.1.1 (likelihood-based loss): ``x_adv = clip(x + c·d)`` with ``d``
    maximising ``<∇_x ℓ, d>`` over the unit ball; one backward pass per batch.
    """

    name = "adv-loss"
    direction = _loss_direction


class AdvLossSign(DirectionalAttack):
    """Adv_Loss_Sign: step along sign(∇loss), of linf size eps (= FGSM) or of l2 size eps.

    Reference: Huang et al., "Learning with a Strong Adversary", arXiv:1511.03034, Section 6.1.1
    (linf case, "exactly the method suggested in" Goodfellow, Shlens, Szegedy, arXiv:1412.6572).
    ``norm=l2`` rescales ``sign(∇)`` to l2 length eps, as the paper's l2-measured tables do.
    """

    name = "adv-loss-sign"
    params = (SIGN_NORM, eps_param())
    direction = _sign_direction


class AdvLossMin(MinimalDirectionalAttack):
    """Adv_Loss, minimal norm: the smallest scale along the loss-gradient direction that flips.

    Reference: Huang et al., "Learning with a Strong Adversary", arXiv:1511.03034, Section 6.1.1
    (the direction); the scale is searched per example (grid scan, then bisection).
    """

    name = "adv-loss-min"
    test_spec = "adv-loss-min:grid=8,bisect=4"
    direction = _loss_direction


class AdvLossSignMin(MinimalDirectionalAttack):
    """Adv_Loss_Sign, minimal norm: the smallest scale along sign(∇loss) that flips (linf or l2).

    Reference: Huang et al., "Learning with a Strong Adversary", arXiv:1511.03034, Section 6.1.1;
    Goodfellow, Shlens, Szegedy, arXiv:1412.6572 (the sign direction). Scale searched per example.
    """

    name = "adv-loss-sign-min"
    params = (SIGN_NORM, *MinimalDirectionalAttack.params[1:])
    test_spec = "adv-loss-sign-min:grid=8,bisect=4"
    direction = _sign_direction
