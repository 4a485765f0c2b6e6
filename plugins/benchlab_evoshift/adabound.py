"""AdaBound training (EvoShift Figure 8's fourth optimizer) through the maintained pytorch-optimizer package.

benchlab's recipes offer SGD, Adam and RMSprop; AdaBound is not in torch, and the original
``adabound`` package has had no release since 2019, so this defense takes it from
``pytorch-optimizer`` (optional: without it the defense reports itself n/a).
"""

from __future__ import annotations

import importlib.util

import torch

from benchlab import Context, Param, Recipe, TrainingDefense

PACKAGE = "pytorch_optimizer"


class AdaBound(TrainingDefense):
    """AdaBound optimizer: Adam whose per-parameter step sizes are clipped into bounds converging to SGD.

    Reference: Luo, Xiong, Liu, Sun, "Adaptive Gradient Methods with Dynamic Bound of Learning
    Rate", ICLR 2019, arXiv:1902.09843 (Algorithm 2); compared with SGD, Adam and RMSprop under
    EvoShift in IEEE Access 9, 2021, doi:10.1109/ACCESS.2021.3101282, Figure 8. Needs
    ``pip install pytorch-optimizer``. The victim's recipe gives epochs, batch size, weight decay.
    """

    name = "adabound"
    frameworks = ("torch",)
    params = (
        Param("lr", float, 1e-3, "initial (Adam-like) learning rate", low=0.0),
        Param("final_lr", float, 0.1, "SGD learning rate the bounds converge to", low=0.0),
        Param("gamma", float, 1e-3, "convergence speed of the bound functions", low=0.0),
    )

    def incompatibility(self, info, victim):
        if importlib.util.find_spec(PACKAGE) is None:
            return "adabound needs the pytorch-optimizer package (pip install pytorch-optimizer)"
        return super().incompatibility(info, victim)

    def optimizer(self, model, recipe: Recipe, ctx: Context) -> torch.optim.Optimizer:
        from pytorch_optimizer import AdaBound as AdaBoundOptimizer

        return AdaBoundOptimizer(model.parameters(), lr=self.p.lr, final_lr=self.p.final_lr,
                                 gamma=self.p.gamma, weight_decay=recipe.weight_decay)
