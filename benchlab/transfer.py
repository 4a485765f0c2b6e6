"""Transfer (black-box) evaluation for every evasion attack: craft on a source model, score on the cell's.

Every evasion attack accepts two parameters, added to its declared ones by :class:`EvasionAttack`:

* ``source=DEFENSE`` crafts the adversarial inputs on the victim trained by that defense on clean
  data (``pgd:eps=0.1,source=erm``) -- the *Fixed* column of Huang et al. (LWA, arXiv:1511.03034,
  Section 7.2), which scores every defense on one adversarial set made on the normally trained net;
* ``source_victim=VICTIM`` crafts on another architecture (default: the cell's victim), so a torch
  model's adversarial inputs can be scored on a Random Forest or an SVM.

The runner trains and caches the source model like any other cell's model (``ctx.reference``) and
scores the attack's output on the cell's own model: the attack itself never knows it is transferred.
Both are nested specs (``Param(kind=...)``): the registry that creates the attack checks that they
resolve, so a typo fails when the matrix is expanded, not mid-run. Specs given as values take at most
one parameter each (commas separate the attack's parameters).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .params import Param, SpecError

if TYPE_CHECKING:
    from .classifier import Classifier
    from .context import Context
    from .interfaces import EvasionAttack

SOURCE_PARAMS = (
    Param("source", str, None, "craft on the victim trained by this defense (e.g. erm) and score on the cell's "
                               "model: transfer / 'Fixed' evaluation (None: white-box on the cell's model)",
          kind="defenses", keyword_only=True),
    Param("source_victim", str, None, "with source: craft on this victim instead of the cell's (e.g. lenet5)",
          kind="victims", keyword_only=True),
)


def with_source_params(params: tuple[Param, ...]) -> tuple[Param, ...]:
    """``params`` plus the transfer parameters it does not declare already."""
    names = {p.name for p in params}
    return (*params, *(p for p in SOURCE_PARAMS if p.name not in names))


def check_source(attack: EvasionAttack) -> None:
    """``source_victim`` only means something with ``source``: fail when the matrix is expanded."""
    if attack.values.get("source") is None and attack.values.get("source_victim") is not None:
        raise SpecError(f"{attack.name}: source_victim={attack.values['source_victim']!r} needs source=DEFENSE "
                        f"(e.g. source=erm)")


def crafting_model(attack: EvasionAttack, model: Classifier, ctx: Context) -> Classifier:
    """The model ``attack`` crafts on: the cell's ``model``, or the source model when ``source`` is set."""
    source = attack.values.get("source")
    if source is None:
        return model
    if ctx.reference is None:
        raise RuntimeError(f"{attack.spec}: source={source!r} needs ctx.reference (set by the runner) "
                           f"to obtain the source model")
    return ctx.reference(source, attack.values.get("source_victim"))
