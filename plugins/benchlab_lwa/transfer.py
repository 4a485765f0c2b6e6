"""Transfer ("Fixed") evaluation for any evasion attack: craft on a reference model, test on the cell's.

LWA's *Fixed* column (Huang et al., arXiv:1511.03034, Section 7.2) evaluates every defense on one
adversarial set generated on the normally trained network. Here that is a ``source`` parameter: when
it names a defense (``adv-loss:norm=l2,source=erm``) the attack crafts on ``ctx.reference(source)``
— the same victim trained by that defense on clean data, cached by the runner — while the runner
scores the result on the cell's own model. Written as a mixin so it can move to the core unchanged.
"""

from __future__ import annotations

from benchlab.classifier import Classifier
from benchlab.context import Context
from benchlab.params import Param, SpecError


def source_param() -> Param:
    return Param("source", str, None,
                 "craft on the victim trained by this defense (e.g. erm) and evaluate on the cell's "
                 "model: transfer / 'Fixed' evaluation (None: white-box on the cell's model)")


class TransferMixin:
    """For evasion attacks declaring :func:`source_param`: picks the model to craft on."""

    def __init__(self, **values):
        super().__init__(**values)
        source = self.values.get("source")
        if source is not None:  # a typo must fail at spec resolution, not deep inside a run
            from benchlab.plugins import get_registry

            try:
                get_registry().create("defenses", source)
            except SpecError as error:
                raise SpecError(f"{self.name}: source={source!r} is not a defense spec: {error}") from None

    def crafting_model(self, model: Classifier, ctx: Context) -> Classifier:
        source = self.values.get("source")
        if source is None:
            return model
        if ctx.reference is None:
            raise RuntimeError(f"{self.spec}: source={source!r} needs ctx.reference (set by the runner) "
                               f"to obtain the reference model")
        return ctx.reference(source)
