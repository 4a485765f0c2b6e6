"""torchattacks attacks as benchlab evasion attacks: ``ta:<attack>`` plus ``ta-deepfool`` and ``ta-cw``.

``ta`` takes the torchattacks attack as its first (positional) parameter and declares the union of
the parameters of every exposed attack (:data:`catalogue.UNION_PARAMS`, all ``None`` = "the attack's
default"); a parameter the selected attack does not take is an error naming the ones it does.
``minimal_norm`` and ``norm`` follow the selected attack, so the runner reports ``rho_adv`` for
``ta:deepfool`` and ``ta:cw``. ``ta-deepfool`` and ``ta-cw`` are the same attacks under names of
their own with only their own parameters, for matrices and leaderboards.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import ClassVar

import torch

from benchlab import (
    SOURCE_PARAMS,
    Classifier,
    Context,
    EvasionAttack,
    Param,
    SpecError,
    format_spec,
    missing_budget,
    resolve_budget,
)

from .adapter import ClassifierModule, frozen, run_in_chunks
from .catalogue import CATALOGUE, UNION_PARAMS, Entry


class _TorchAttack(EvasionAttack):
    """Shared plumbing: parameter resolution, the adapter, chunked execution."""

    @property
    def selected(self) -> str:
        raise NotImplementedError

    @property
    def entry(self) -> Entry:
        return CATALOGUE[self.selected]

    @property
    def norm(self) -> str:
        return self.settings.get("norm") or self.entry.norm

    @property
    def given(self) -> dict:
        """Parameters set in the spec (not None), minus the attack selector and the transfer parameters
        (the runner's business, not torchattacks')."""
        runner_side = {"attack", *(p.name for p in SOURCE_PARAMS)}
        return {k: v for k, v in self.values.items() if k not in runner_side and v is not None}

    @property
    def settings(self) -> dict:
        """Every parameter the selected attack takes, spec values over the catalogue defaults."""
        return {**self.entry.defaults, **self.given}

    def incompatibility(self, info, victim):
        if self.entry.budgeted:
            reason = missing_budget(self.values.get("eps"), self.norm, info)
            if reason:
                return reason
        return super().incompatibility(info, victim)

    def perturb(self, model: Classifier, x: torch.Tensor, y: torch.Tensor, ctx: Context) -> torch.Tensor:
        if not model.differentiable:
            raise TypeError(f"{self.spec}: torchattacks needs a differentiable (torch) classifier")
        settings = self.settings
        if self.entry.budgeted:
            settings["eps"] = resolve_budget(settings["eps"], self.norm, ctx)
        module = ClassifierModule(model, ctx.device)
        with frozen(module):
            return run_in_chunks(self.entry.build(module, settings), x, y, ctx.device, ctx.progress)


class TorchAttack(_TorchAttack):
    """A torchattacks attack chosen by name: ta:pgd,eps=0.3 / ta:deepfool / ta:cw,c=1,steps=100.

    Reference: Kim, "Torchattacks: A PyTorch Repository for Adversarial Attacks", 2020,
    https://arxiv.org/abs/2010.01950 (MIT). Each attack implements its own paper (see the plugin
    README); this class only adapts the interface. Attacks: fgsm, bim, pgd, pgdl2, mifgsm, apgd,
    deepfool, cw. ``eps`` set by a matrix budget is dropped for minimal-norm attacks, which have none.
    """

    name = "ta"
    params = (Param("attack", str, None, "the torchattacks attack", choices=tuple(CATALOGUE), required=True),
              *UNION_PARAMS)
    test_spec = "ta:pgd,steps=3"

    def __init__(self, **values):
        super().__init__(**values)
        if self.selected not in CATALOGUE:
            raise SpecError(f"ta: choose an attack first, e.g. ta:pgd; attacks: {', '.join(CATALOGUE)}")
        entry, given = self.entry, self.given
        if "eps" in given and not entry.budgeted:
            # Matrices fill eps from the dataset budget for every attack declaring it: ignore it here.
            self.values["eps"] = None
            self.p = SimpleNamespace(**self.values)
            self.spec = format_spec(self.name, self.params, self.values)
            given.pop("eps")
        unknown = sorted(set(given) - set(entry.defaults))
        if unknown:
            accepted = ", ".join(entry.defaults) or "no parameters"
            raise SpecError(f"ta:{self.selected} does not take {', '.join(unknown)}; it takes {accepted}. "
                            f"Attacks: {', '.join(CATALOGUE)}")

    @property
    def selected(self) -> str:
        return self.values["attack"]

    @property
    def minimal_norm(self) -> bool:  # the runner reads it per instance: it follows the attack chosen
        return self.entry.minimal_norm


def _own_params(attack: str, exclude: tuple[str, ...] = ()) -> tuple[Param, ...]:
    """The union parameters one attack takes, with its defaults made explicit."""
    defaults = CATALOGUE[attack].defaults
    union = {p.name: p for p in UNION_PARAMS}
    return tuple(Param(name, union[name].type, default, union[name].help.split(": ", 1)[-1],
                       union[name].choices, union[name].low, union[name].high)
                 for name, default in defaults.items() if name not in exclude)


class TorchAttackDeepFool(_TorchAttack):
    """DeepFool (torchattacks): minimal l2 perturbation by iterated linearised decision boundaries.

    Reference: Moosavi-Dezfooli, Fawzi & Frossard, "DeepFool: a simple and accurate method to fool
    deep neural networks", CVPR 2016, https://arxiv.org/abs/1511.04599 (Algorithm 2, multiclass,
    l2). Inputs already misclassified are returned unchanged; each step is clipped to [0, 1].
    """

    name = "ta-deepfool"
    params = _own_params("deepfool")
    minimal_norm: ClassVar[bool] = True
    test_spec = "ta-deepfool:steps=10"

    @property
    def selected(self) -> str:
        return "deepfool"


class TorchAttackCW(_TorchAttack):
    """Carlini-Wagner l2 (torchattacks), with an optional per-example binary search over c.

    Reference: Carlini & Wagner, "Towards Evaluating the Robustness of Neural Networks", IEEE S&P
    2017, https://arxiv.org/abs/1608.04644 (the l2 attack, eq. 6 objective in tanh space, Adam).
    Examples the attack cannot flip are returned unchanged (they count as zero perturbation).
    """

    name = "ta-cw"
    params = _own_params("cw")
    minimal_norm: ClassVar[bool] = True
    test_spec = "ta-cw:steps=20,lr=0.05"

    @property
    def selected(self) -> str:
        return "cw"


ALL = [TorchAttack, TorchAttackDeepFool, TorchAttackCW]
