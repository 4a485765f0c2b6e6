"""AutoAttack, standard version, through torchattacks: ``autoattack`` (linf or l2).

Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of diverse
parameter-free attacks", ICML 2020, https://arxiv.org/abs/2003.01690 (the "standard"
ensemble RobustBench ranks by): APGD on the cross-entropy, targeted APGD on the DLR loss over the
top-9 (n_classes − 1) classes, targeted FAB over the same classes, and Square with 5000 queries,
each run on the inputs the previous ones left correctly classified. torchattacks' ``AutoAttack``
builds that ensemble but leaves APGD, APGD-T and FAB at its own 10 iterations; the paper runs
100, which is ``steps``' default here; ``queries`` sets Square's 5000 (everything else is torchattacks' code).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from benchlab import Classifier, Context, EvasionAttack, Param, eps_param, missing_budget, norm_param, resolve_budget

from .adapter import ClassifierModule, frozen, run_in_chunks

if TYPE_CHECKING:
    import torchattacks

TORCHATTACKS_NORMS = {"linf": "Linf", "l2": "L2"}
# The DLR loss of APGD-T reads the third and fourth largest logits.
MIN_CLASSES = 4


def standard_autoattack(module, norm: str, eps: float, n_classes: int, seed: int, steps: int = 100,
                        queries: int = 5000) -> torchattacks.Attack:
    """torchattacks' standard AutoAttack with ``steps`` iterations for its gradient attacks and
    ``queries`` for Square."""
    import torchattacks  # loads torchvision (about a second): only when an attack is built

    attack = torchattacks.AutoAttack(module, norm=TORCHATTACKS_NORMS[norm], eps=eps, version="standard",
                                     n_classes=n_classes, seed=seed)
    for member in attack._autoattack.attacks:  # APGD, APGD-T, FAB (Square counts queries instead)
        if isinstance(member, torchattacks.Square):
            member.n_queries = queries
        else:
            member.steps = steps
    return attack


class AutoAttack(EvasionAttack):
    """AutoAttack (standard): APGD-CE, APGD-T, FAB-T and Square, via torchattacks (linf or l2).

    Reference: Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of
    diverse parameter-free attacks", ICML 2020, https://arxiv.org/abs/2003.01690 (version
    "standard"; Square: Andriushchenko et al. 2020, arXiv:1912.00049). Seeded from the cell seed.
    """

    name = "autoattack"
    params = (
        norm_param(),
        eps_param(),
        Param("steps", int, 100, "iterations of APGD-CE, APGD-T and FAB-T (the paper: 100)", low=1),
        Param("queries", int, 5000, "query budget of Square (the paper: 5000)", low=1),
    )
    test_spec = "autoattack:steps=5,queries=100"
    salt = 120

    def incompatibility(self, info, victim):
        if info.num_classes < MIN_CLASSES:
            return (f"autoattack needs at least {MIN_CLASSES} classes (APGD-T's DLR loss); "
                    f"{info.name} has {info.num_classes}")
        return missing_budget(self.p.eps, self.p.norm, info) or super().incompatibility(info, victim)

    def perturb(self, model: Classifier, x: torch.Tensor, y: torch.Tensor, ctx: Context) -> torch.Tensor:
        if not model.differentiable:
            raise TypeError(f"{self.spec}: AutoAttack needs a differentiable (torch) classifier")
        eps = resolve_budget(self.p.eps, self.p.norm, ctx)
        module = ClassifierModule(model, ctx.device)
        with frozen(module):
            attack = standard_autoattack(module, self.p.norm, eps, ctx.info.num_classes,
                                         ctx.generator(self.salt).initial_seed(), self.p.steps, self.p.queries)
            return run_in_chunks(attack, x, y, ctx.device, ctx.progress)
