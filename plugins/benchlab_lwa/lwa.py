"""Learning with a (strong) adversary: Algorithm 2 on raw inputs, Algorithm 3 at a representation layer.

Huang, Xu, Schuurmans & Szepesvári, "Learning with a Strong Adversary", arXiv:1511.03034, Section 5:
``min_g Σ_i max_{||r_i|| ≤ c} ℓ(g(x_i + r_i), y_i)`` (Eq. 2), solved by SGD on pseudo-samples
``x̂_i = x_i + c·r*/||r*||`` where ``r*`` is the linearised inner maximiser (Section 6.1) — by
Proposition 6 the gradient of the max is the gradient at the maximiser. Both defenses are
:class:`TrainingDefense` objectives, so recipes, caching and checkpoints come from the core.
"""

from __future__ import annotations

from torch import nn
from torch.nn import functional as F

from benchlab import Param, TrainingDefense, missing_budget, norm_param, resolve_budget

from .linearization import NORMS, RULES, adversarial_direction, eval_mode


def rule_param() -> Param:
    return Param("rule", str, "likelihood",
                 "r*: likelihood (loss gradient, 6.1.1; the paper's experiments) or misclassification "
                 "(Algorithm 1's r_I, 6.1.2; K backward passes per batch)", choices=RULES)


class LWA(TrainingDefense):
    """LWA: train only on pseudo-samples x + c·r*/||r*|| (likelihood or misclassification rule).

    Reference: Huang, Xu, Schuurmans, Szepesvári, "Learning with a Strong Adversary",
    arXiv:1511.03034, Algorithm 2 (Eq. 2, Proposition 6, Section 6.1). Each batch: compute ``r*``
    at the current network (in eval mode), replace ``x`` by ``clip(x + c·r*/||r*||)``, update on the
    pseudo-samples alone. ``c`` is ``eps`` in ``norm`` (the paper: l2); None takes the dataset budget.
    """

    name = "lwa"
    frameworks = ("torch",)
    params = (
        Param("eps", float, None, "c, the pseudo-sample distance (None: the dataset budget for norm)",
              low=0.0),
        norm_param(NORMS, "l2"),
        rule_param(),
    )

    def incompatibility(self, info, victim):
        return missing_budget(self.p.eps, self.p.norm, info) or super().incompatibility(info, victim)

    def objective(self, model, victim, ctx):
        c = resolve_budget(self.p.eps, self.p.norm, ctx)
        rule, norm = self.p.rule, self.p.norm

        def pseudo_sample_loss(model, x, y):
            with eval_mode(model):
                r = adversarial_direction(model, x, y, rule, norm)
            # Clipped like the test-time attacks: pseudo-samples stay valid images.
            logits = model((x + c * r).clamp(0.0, 1.0))
            return F.cross_entropy(logits, y), logits

        return pseudo_sample_loss


def split_at(victim, model: nn.Module, depth: int) -> tuple[nn.Module, nn.Module]:
    """The victim's (representation, head), with the last ``depth`` weight layers of the
    representation (and what follows them) moved into the head: the paper's split hyperparameter."""
    rep, head = victim.split(model)
    if depth == 0:
        return rep, head
    if not isinstance(rep, nn.Sequential):
        raise ValueError(f"lwa-rep: depth={depth} needs a Sequential representation; {victim.spec} has "
                         f"{type(rep).__name__} (use depth=0)")
    weighted = [i for i, layer in enumerate(rep) if any(True for _ in layer.parameters(recurse=True))]
    if depth >= len(weighted):
        raise ValueError(f"lwa-rep: depth={depth} but {victim.spec}'s representation has only "
                         f"{len(weighted)} weight layers (depth must leave at least one)")
    cut = weighted[-depth]
    # Slices share the modules: the optimizer over model.parameters() still updates them.
    return rep[:cut], nn.Sequential(*rep[cut:], head)


class LWARep(TrainingDefense):
    """LWA_Rep: LWA at the output of the victim's representation layers (split depth adjustable).

    Reference: Huang, Xu, Schuurmans, Szepesvári, "Learning with a Strong Adversary",
    arXiv:1511.03034, Eq. 4 and Algorithm 3. ``x̃ = N_rep(x)``; ``r*`` is computed for the head at
    ``x̃`` (Section 6.1); the loss at ``N_cla(x̃ + c·r*/||r*||)`` updates the head and, through
    ``x̃`` with ``r*`` held fixed, the representation (lines 10-12). ``depth`` moves the last weight
    layers of the victim's representation into the head. Features are unbounded: no clipping.
    """

    name = "lwa-rep"
    frameworks = ("torch",)
    params = (
        Param("eps", float, 1.0, "c, the pseudo-sample distance in feature space", low=0.0),
        norm_param(NORMS, "l2"),
        rule_param(),
        Param("depth", int, 0, "weight layers moved from the victim's representation into the head", low=0),
    )

    def incompatibility(self, info, victim):
        if victim is not None and victim.framework == "torch" and not victim.has_split:
            return f"lwa-rep needs a victim with a representation split; {victim.name} has none"
        return super().incompatibility(info, victim)

    def objective(self, model, victim, ctx):
        rep, head = split_at(victim, model, self.p.depth)
        c, rule, norm = self.p.eps, self.p.rule, self.p.norm

        def feature_pseudo_sample_loss(model, x, y):
            features = rep(x)
            with eval_mode(head):
                r = adversarial_direction(head, features.detach(), y, rule, norm)
            logits = head(features + c * r)
            return F.cross_entropy(logits, y), logits

        return feature_pseudo_sample_loss
