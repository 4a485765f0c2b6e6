"""``high-confidence``: the paper's attack A_f as a benchlab evasion attack (Table 1, column "Our")."""

from __future__ import annotations

from typing import ClassVar

import torch

from benchlab import Classifier, Context, EvasionAttack, EvasionResult, Metric, Param, SpecError, chunks

from .high_confidence import closest_boundary_target, high_confidence_attack

TARGETS = ("closest", "random", "class")


class HighConfidenceAttack(EvasionAttack):
    """High-confidence targeted l2 attack: push p_target(x) to confidence C by linearised log-prob steps.

    Reference: Matyasko & Chau, "Improved Network Robustness with Adversary Critic", NeurIPS 2018,
    https://arxiv.org/abs/1810.12576 (Algorithm 1, eq. 7). Test-time settings of Sec. 5: target =
    the class with the closest (linearised) decision boundary to the predicted class, C = the
    prediction confidence on the original input, at most 500 steps, each clipped to l2 norm 0.1 and
    projected onto [0, 1]. Reports rho_adv like DeepFool; inputs that never reach C are failures
    (``success`` False, counted in ``hc_success_rate``) and keep their last iterate.
    """

    name = "high-confidence"
    declared_metrics = (
        Metric("hc_success_rate", False, "share of test inputs whose target reached confidence C and is the "
                                         "prediction"),
        Metric("hc_confidence", False, "mean target probability at the returned inputs"),
    )
    params = (
        Param("confidence", float, None, "target confidence C (None: the prediction confidence on x)",
              low=1e-6, high=1 - 1e-6),
        Param("target", str, "closest", "closest: nearest linearised boundary; random: uniform over other "
              "classes; class: target_class", choices=TARGETS),
        Param("target_class", int, None, "the target for target=class", low=0),
        Param("steps", int, 500, "maximum iterations N_max", low=1),
        Param("step_clip", float, 0.1, "l2 clip of each step (None: unclipped)", low=0.0),
        Param("overshoot", float, 0.02, "each step is scaled by 1 + overshoot", low=0.0),
    )
    minimal_norm: ClassVar[bool] = True
    test_spec = "high-confidence:steps=50"
    salt = 611

    def __init__(self, **values):
        super().__init__(**values)
        if (self.p.target == "class") != (self.p.target_class is not None):
            raise SpecError("high-confidence: target_class is required with target=class and only "
                            "allowed there")

    @property
    def norm(self) -> str:
        return "l2"

    def incompatibility(self, info, victim):
        if self.p.target_class is not None and self.p.target_class >= info.num_classes:
            return (f"{self.spec}: target_class {self.p.target_class} but {info.name} has "
                    f"{info.num_classes} classes")
        return super().incompatibility(info, victim)

    def targets(self, logits: torch.Tensor, source: torch.Tensor, x: torch.Tensor, model: Classifier,
                generator: torch.Generator) -> torch.Tensor:
        if self.p.target == "class":
            return torch.full_like(source, self.p.target_class)
        if self.p.target == "random":  # uniform over the classes other than the prediction
            shift = torch.randint(1, logits.shape[1], source.shape, generator=generator).to(source.device)
            return (source + shift) % logits.shape[1]
        return closest_boundary_target(model.logits, x, source)

    def perturb(self, model: Classifier, x: torch.Tensor, y: torch.Tensor, ctx: Context) -> EvasionResult:
        generator = ctx.generator(self.salt)
        outputs = [self._perturb_chunk(model, x[s].to(ctx.device), generator)
                   for s in ctx.progress.steps(chunks(len(x)), "batch")]
        x_adv, target, reached, p_target = (torch.cat(parts) for parts in zip(*outputs))
        metrics = {"hc_success_rate": reached.float().mean().item(), "hc_confidence": p_target.mean().item()}
        return EvasionResult(x_adv.to(x.device), target.to(y.device), reached.to(y.device), metrics)

    def _perturb_chunk(self, model: Classifier, x: torch.Tensor, generator: torch.Generator):
        with torch.no_grad():
            logits = model.logits(x)
        source = logits.argmax(1)
        target = self.targets(logits, source, x, model, generator)
        confidence = logits.softmax(1).amax(1) if self.p.confidence is None else \
            torch.full((len(x),), self.p.confidence, device=x.device)
        x_adv, reached = x.clone(), target == source  # a target equal to the prediction needs no step
        todo = ~reached
        if todo.any():
            x_adv[todo], reached[todo] = high_confidence_attack(
                model.logits, x[todo], target[todo], confidence[todo], self.p.steps,
                step_clip=self.p.step_clip, overshoot=self.p.overshoot)
        with torch.no_grad():
            p_target = model.logits(x_adv).softmax(1).gather(1, target[:, None]).squeeze(1)
        return x_adv.detach(), target, reached, p_target
