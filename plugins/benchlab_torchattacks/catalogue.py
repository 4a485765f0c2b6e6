"""The torchattacks attacks the wrapper exposes: constructor, threat-model norm, parameters.

Each entry maps benchlab parameter names onto one torchattacks constructor. ``defaults`` lists the
parameters the attack accepts and the value used when a spec leaves them unset; ``eps: None`` marks
a budgeted attack whose budget comes from the spec or, failing that, the dataset (as for the
baseline attacks). Iterative linf/l2 attacks default their step to ``2.5 * eps / steps`` (Madry et
al.'s rule, also benchlab's PGD) instead of torchattacks' CIFAR-scaled ``2/255``. Two entries use
thin subclasses that restore the original papers' algorithms: DeepFool's overshoot on the total
perturbation (:mod:`.deepfool_total`) and C&W's binary search over c (:mod:`.search_cw`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from torch import nn

from benchlab import Param

if TYPE_CHECKING:
    import torchattacks


@dataclass(frozen=True)
class Entry:
    """One exposed attack: builds the torchattacks object from resolved parameter values."""

    build: Callable[[nn.Module, dict], torchattacks.Attack]
    norm: str  # the norm its perturbations are measured in ("apgd" follows its ``norm`` value)
    minimal_norm: bool  # searches for the smallest flipping perturbation (runner reports rho_adv)
    defaults: dict  # accepted parameters and their defaults (eps None: the budget)
    summary: str

    @property
    def budgeted(self) -> bool:
        return "eps" in self.defaults


def _torchattacks():
    """torchattacks, imported when an attack is built: it loads torchvision (about a second), which
    listing and configuring attacks do not need."""
    import torchattacks

    return torchattacks


def _total_overshoot_deepfool(m: nn.Module, v: dict) -> torchattacks.Attack:
    from .deepfool_total import TotalOvershootDeepFool  # a torchattacks subclass: imports torchattacks

    return TotalOvershootDeepFool(m, steps=v["steps"], overshoot=v["overshoot"])


def _binary_search_cw(m: nn.Module, v: dict) -> torchattacks.Attack:
    from .search_cw import BinarySearchCW  # a torchattacks subclass: imports torchattacks

    return BinarySearchCW(m, c=v["c"], kappa=v["kappa"], steps=v["steps"], lr=v["lr"], search_steps=v["search_steps"])


def _alpha(v: dict) -> float:
    return v["alpha"] if v["alpha"] is not None else 2.5 * v["eps"] / v["steps"]


CATALOGUE: dict[str, Entry] = {
    "fgsm": Entry(lambda m, v: _torchattacks().FGSM(m, eps=v["eps"]), "linf", False,
                  {"eps": None}, "one signed-gradient step (Goodfellow et al. 2015)"),
    "bim": Entry(lambda m, v: _torchattacks().BIM(m, eps=v["eps"], alpha=_alpha(v), steps=v["steps"]),
                 "linf", False, {"eps": None, "alpha": None, "steps": 10},
                 "basic iterative method (Kurakin et al. 2017)"),
    "pgd": Entry(lambda m, v: _torchattacks().PGD(m, eps=v["eps"], alpha=_alpha(v), steps=v["steps"],
                                               random_start=v["random_start"]),
                 "linf", False, {"eps": None, "alpha": None, "steps": 10, "random_start": True},
                 "linf projected gradient descent (Madry et al. 2018)"),
    "pgdl2": Entry(lambda m, v: _torchattacks().PGDL2(m, eps=v["eps"], alpha=_alpha(v), steps=v["steps"],
                                                   random_start=v["random_start"]),
                   "l2", False, {"eps": None, "alpha": None, "steps": 10, "random_start": True},
                   "l2 projected gradient descent (Madry et al. 2018)"),
    "mifgsm": Entry(lambda m, v: _torchattacks().MIFGSM(m, eps=v["eps"], alpha=_alpha(v), steps=v["steps"],
                                                     decay=v["decay"]),
                    "linf", False, {"eps": None, "alpha": None, "steps": 10, "decay": 1.0},
                    "momentum iterative FGSM (Dong et al. 2018)"),
    "apgd": Entry(lambda m, v: _torchattacks().APGD(m, norm={"linf": "Linf", "l2": "L2"}[v["norm"]],
                                                 eps=v["eps"], steps=v["steps"], n_restarts=v["n_restarts"],
                                                 loss=v["loss"]),
                  "linf", False, {"eps": None, "steps": 10, "n_restarts": 1, "loss": "ce", "norm": "linf"},
                  "auto-PGD, step-size free (Croce & Hein 2020)"),
    "deepfool": Entry(_total_overshoot_deepfool, "l2", True, {"steps": 50, "overshoot": 0.02},
                      "minimal l2 flip by linearised boundaries (Moosavi-Dezfooli et al. 2016)"),
    "cw": Entry(_binary_search_cw, "l2", True, {"c": 1.0, "kappa": 0.0, "steps": 50, "lr": 0.01, "search_steps": 1},
                "Carlini-Wagner l2, optional binary search over c (Carlini & Wagner 2017)"),
}

# The union of every entry's parameters, all defaulting to None ("the attack's own default").
UNION_PARAMS: tuple[Param, ...] = (
    Param("eps", float, None, "budget of budgeted attacks (None: the dataset budget); ignored by "
          "minimal-norm attacks", low=0.0),
    Param("alpha", float, None, "step size of iterative attacks (None: 2.5 * eps / steps)", low=0.0),
    Param("steps", int, None, "iterations (None: the attack's default)", low=1),
    Param("random_start", bool, None, "pgd/pgdl2: start at a random point of the ball (default true)"),
    Param("decay", float, None, "mifgsm: momentum decay (default 1.0)", low=0.0),
    Param("n_restarts", int, None, "apgd: restarts (default 1)", low=1),
    Param("loss", str, None, "apgd: loss (default ce)", choices=("ce", "dlr")),
    Param("norm", str, None, "apgd: threat-model norm (default linf)", choices=("linf", "l2")),
    Param("overshoot", float, None, "deepfool: overshoot factor (default 0.02)", low=0.0),
    Param("c", float, None, "cw: (initial) constant c weighing the misclassification term (default 1)",
          low=0.0),
    Param("kappa", float, None, "cw: confidence margin kappa (default 0)", low=0.0),
    Param("lr", float, None, "cw: Adam learning rate (default 0.01)", low=0.0),
    Param("search_steps", int, None, "cw: binary-search rounds over c per example (default 1: fixed c)",
          low=1),
)


def describe() -> str:
    """One line per attack: name, norm, minimal-norm flag, accepted parameters with defaults."""
    lines = []
    for name, entry in CATALOGUE.items():
        params = ", ".join(f"{k}={'budget' if k == 'eps' else v}" for k, v in entry.defaults.items())
        kind = "minimal-norm" if entry.minimal_norm else "budgeted"
        lines.append(f"{name} ({entry.norm}, {kind}): {params}")
    return "\n".join(lines)
