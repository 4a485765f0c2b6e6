"""Adv_Alpha: the linearised-softmax minimal flip of Algorithm 1, scaled to the budget (or searched).

Huang, Xu, Schuurmans & Szepesvári, "Learning with a Strong Adversary", arXiv:1511.03034,
Section 2 (Algorithm 1, Propositions 3/4) and Section 6.1.2 (``r* = c·r_I/||r_I||``).
"""

from __future__ import annotations

from .attack_base import DirectionalAttack, MinimalDirectionalAttack
from .linearization import alpha_direction


def _alpha_direction(self, model, x, y):
    # K backward passes over the whole chunk give every example's softmax Jacobian at once.
    return alpha_direction(model.logits, x, y, self.p.norm)


class AdvAlpha(DirectionalAttack):
    """Adv_Alpha: step c along the linearised-softmax minimal flip r_I (l2, linf or l1).

    Reference: Huang, Xu, Schuurmans, Szepesvári, "Learning with a Strong Adversary",
    arXiv:1511.03034, Algorithm 1 with Propositions 3/4 and Section 6.1.2. With ``α = softmax``
    and ``T = ∂α/∂x`` (K backward passes for the batch), ``r_(j) = (α_y − α_j)/||T_j − T_y||_* ·
    argmax_{||d||≤1} <T_j − T_y, d>``, ``I = argmin_j ||r_(j)||`` and ``x_adv = clip(x + c·r_I/||r_I||)``.
    """

    name = "adv-alpha"
    direction = _alpha_direction


class AdvAlphaMin(MinimalDirectionalAttack):
    """Adv_Alpha, minimal norm: the smallest scale along r_I/||r_I|| that flips the prediction.

    Reference: Huang et al., "Learning with a Strong Adversary", arXiv:1511.03034, Algorithm 1
    (the direction); the scale is searched per example (grid scan, then bisection) instead of fixed
    to c, so cells report ``perturbation_norm`` / ``rho_adv``.
    """

    name = "adv-alpha-min"
    test_spec = "adv-alpha-min:grid=8,bisect=4"
    direction = _alpha_direction
