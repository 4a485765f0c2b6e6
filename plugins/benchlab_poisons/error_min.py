"""``error-min``: unlearnable examples by error-minimising noise (Huang et al., ICLR 2021)."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from benchlab import (
    Context,
    DataSplits,
    Fitted,
    Metric,
    Param,
    PoisonAttack,
    PoisonedSet,
    TensorData,
    chunks,
    eps_param,
    fraction_param,
    missing_budget,
    poison_mask,
    resolve_budget,
)

from .surrogate import SurrogateTrainer, accuracy, build_surrogate, surrogate_params

MODES = ("sample", "class")
# The paper's settings per mode (its released configuration): T noise steps per round, and the
# stop threshold on the surrogate's poisoned-train accuracy (error 0.01 sample-wise, 0.1 class-wise).
NOISE_STEPS = {"sample": 20, "class": 1}
STOP_ACC = {"sample": 0.99, "class": 0.9}
# Examples per forward/backward pass of the noise update (memory bound, not a hyperparameter).
NOISE_CHUNK = 1024


class ErrorMinimizing(PoisonAttack):
    """Unlearnable examples: error-minimising L-inf noise from the bi-level min-min problem.

    Reference: Huang, Ma, Erfani, Bailey & Wang, "Unlearnable Examples: Making Personal Data
    Unexploitable", ICLR 2021, arXiv:2101.04898, eq. (2) min_θ E[min_δ L(f_θ(x + δ), y)], solved as in
    its Section 3: alternately ``surrogate_steps`` (M) training steps of the surrogate θ on the
    poisoned data, then ``noise_steps`` (T) PGD steps *descending* the loss in δ,
    δ ← Π_ε(δ − α·sign ∇_δ L), over the whole training set; stop once the surrogate's accuracy on the
    poisoned training set reaches ``stop_acc``, or after ``max_rounds``. Defaults are the paper's:
    M = 10, T = 20, α = eps/10 and a 99 % stop sample-wise; T = 1 and a 90 % stop class-wise.

    ``mode=sample``: one δ per image (the paper's sample-wise noise). ``mode=class``: one δ_k per
    class, its gradient summed over the class's images (class-wise noise). Poisoned images are
    clip(x + δ, 0, 1), so their L-inf distance to x stays ≤ eps. Noise starts uniform in [-eps, eps].
    """

    name = "error-min"
    params = (
        Param("mode", str, "sample", "sample-wise or class-wise noise", choices=MODES),
        eps_param(),
        fraction_param(1.0),
        Param("surrogate_steps", int, 10, "surrogate training steps per round (M)", low=1),
        Param("noise_steps", int, None, "PGD steps on the noise per round, T (None: 20 sample-wise, 1 class-wise)",
              low=1),
        Param("step_size", float, None, "PGD step size α (None: eps / 10, the paper's ratio)", low=0.0),
        Param("stop_acc", float, None, "stop once the surrogate's poisoned-train accuracy reaches this "
              "(None: 0.99 sample-wise, 0.9 class-wise)", low=0.0, high=1.0),
        Param("max_rounds", int, 50, "upper bound on (train, perturb) rounds", low=1),
        *surrogate_params(),
    )
    test_spec = "error-min:surrogate_steps=5,noise_steps=3,max_rounds=2"
    declared_metrics = (
        # Directions from the defender's side: a more successful craft is worse for the defense.
        Metric("craft_rounds", higher_is_better=False, help="error-min: (train, perturb) rounds until the stop"),
        Metric("craft_surrogate_acc", higher_is_better=False,
               help="error-min: the surrogate's accuracy on the poisoned training set when crafting stopped"),
    )

    def incompatibility(self, info, victim):
        return missing_budget(self.p.eps, "linf", info)

    def craft(self, train: TensorData, ctx: Context) -> PoisonedSet:
        eps = resolve_budget(self.p.eps, "linf", ctx)
        step = self.p.step_size if self.p.step_size is not None else eps / 10
        noise_steps = self.p.noise_steps or NOISE_STEPS[self.p.mode]
        stop_acc = self.p.stop_acc if self.p.stop_acc is not None else STOP_ACC[self.p.mode]
        generator = ctx.generator(2011)
        x, y = train.x.to(ctx.device), train.y.to(ctx.device)
        num_classes = ctx.info.num_classes
        shape = (num_classes if self.p.mode == "class" else len(x), *x.shape[1:])
        delta = ((2 * torch.rand(shape, generator=generator) - 1) * eps).to(x.device, x.dtype)
        model = build_surrogate(self.p.surrogate, ctx.info.input_shape, num_classes, generator).to(ctx.device)
        trainer = SurrogateTrainer(model, self.p.lr, self.p.batch_size, generator)
        rounds, poisoned_acc = 0, 0.0
        while rounds < self.p.max_rounds:
            ctx.progress.phase("round", rounds, self.p.max_rounds)  # may stop early
            rounds += 1
            trainer.steps(self._apply(x, y, delta), y, self.p.surrogate_steps)
            for _ in range(noise_steps):
                delta = self._descend(model, x, y, delta, step, eps)
            poisoned_acc = accuracy(model, self._apply(x, y, delta), y)
            if poisoned_acc >= stop_acc:
                break
        mask = poison_mask(len(x), self.p.fraction, generator, x.device)
        poisoned = torch.where(mask.view(-1, 1, 1, 1), self._apply(x, y, delta), x)
        extras = {"rounds": torch.tensor(rounds), "surrogate_acc": torch.tensor(poisoned_acc)}
        if self.p.mode == "class":
            extras["noise"] = delta
        return PoisonedSet(TensorData(poisoned.to(train.device), train.y), mask.to(train.device), extras)

    def _apply(self, x, y, delta):
        noise = delta[y] if self.p.mode == "class" else delta
        return (x + noise).clamp(0.0, 1.0)

    def _descend(self, model, x, y, delta, step, eps):
        """One PGD step *down* the surrogate's loss, for every image's (or every class's) noise."""
        if self.p.mode == "class":  # each class's noise gathers the gradient of all its images
            leaf = delta.detach().requires_grad_(True)
            grad = torch.zeros_like(delta)
            for s in chunks(len(x), NOISE_CHUNK):
                loss = F.cross_entropy(model((x[s] + leaf[y[s]]).clamp(0.0, 1.0)), y[s], reduction="sum")
                grad += torch.autograd.grad(loss, leaf)[0]
            return (delta - step * grad.sign()).clamp(-eps, eps)
        out = torch.empty_like(delta)
        for s in chunks(len(x), NOISE_CHUNK):
            leaf = delta[s].detach().requires_grad_(True)
            loss = F.cross_entropy(model((x[s] + leaf).clamp(0.0, 1.0)), y[s], reduction="sum")
            (grad,) = torch.autograd.grad(loss, leaf)
            out[s] = (delta[s] - step * grad.sign()).clamp(-eps, eps)
        return out

    def metrics(self, poison: PoisonedSet, fitted: Fitted, splits: DataSplits, ctx: Context) -> dict:
        return {"craft_rounds": int(poison.extras["rounds"]),
                "craft_surrogate_acc": float(poison.extras["surrogate_acc"])}
