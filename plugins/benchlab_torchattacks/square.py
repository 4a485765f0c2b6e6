"""The Square attack alone, through torchattacks: ``square`` (linf or l2, black-box, score-based).

Andriushchenko, Croce, Flammarion & Hein, "Square Attack: a query-efficient black-box adversarial
attack via random search", ECCV 2020, https://arxiv.org/abs/1912.00049 (Algorithm 1 with the
square-shaped updates of Algorithms 2 (linf) and 3 (l2)). It reads only the victim's scores, so it
also runs on scikit-learn victims, and declares ``needs_gradients = False``: the reliability check
compares it with the gradient attacks of the same leaderboard row.
"""

from __future__ import annotations

import torch

from benchlab import Classifier, Context, EvasionAttack, Param, eps_param, missing_budget, norm_param, resolve_budget

from .adapter import ClassifierModule, frozen, run_in_chunks
from .autoattack import TORCHATTACKS_NORMS


class Square(EvasionAttack):
    """Square attack: score-based random search with square-shaped updates (linf or l2), black-box.

    Reference: Andriushchenko, Croce, Flammarion & Hein, "Square Attack: a query-efficient
    black-box adversarial attack via random search", ECCV 2020, https://arxiv.org/abs/1912.00049
    (Algorithms 1-3, margin loss). Defaults are AutoAttack's: 5000 queries, p_init = 0.8.
    """

    name = "square"
    needs_gradients = False
    params = (
        norm_param(),
        eps_param(),
        Param("queries", int, 5000, "query budget per input", low=1),
        Param("p_init", float, 0.8, "initial share of pixels a square covers (halved on a schedule)",
              low=0.0, high=1.0),
    )
    test_spec = "square:queries=50"
    salt = 121

    def incompatibility(self, info, victim):
        return missing_budget(self.p.eps, self.p.norm, info) or super().incompatibility(info, victim)

    def perturb(self, model: Classifier, x: torch.Tensor, y: torch.Tensor, ctx: Context) -> torch.Tensor:
        import torchattacks  # loads torchvision (about a second): only when the attack runs

        eps = resolve_budget(self.p.eps, self.p.norm, ctx)
        module = ClassifierModule(model, ctx.device)
        with frozen(module):
            attack = torchattacks.Square(module, norm=TORCHATTACKS_NORMS[self.p.norm], eps=eps,
                                         n_queries=self.p.queries, p_init=self.p.p_init, n_restarts=1,
                                         loss="margin", seed=ctx.generator(self.salt).initial_seed())
            return run_in_chunks(attack, x, y, ctx.device, ctx.progress)
