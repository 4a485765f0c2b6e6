"""The DeepConfuse poison: craft (train or reuse the generator, perturb a fraction) and its metrics."""

from __future__ import annotations

import time

import torch

from benchlab import (
    Context,
    CraftingContext,
    DataSplits,
    Fitted,
    Metric,
    Param,
    PoisonAttack,
    PoisonedSet,
    SpecError,
    TensorData,
    TorchClassifier,
    eps_param,
    fraction_param,
    missing_budget,
    resolve_budget,
)
from benchlab import (
    poison_mask as choose,
)

from . import figures, schedule
from .confuse import SELECT, ConfuseSettings, poisoned, train_generator
from .diagnostics import FIELDS, as_tensor, class_share
from .generator import KINDS, build_generator, noise_of

GENERATOR_PREFIX = "generator."
# Parameters that change the poisoned set but not the trained generator (so they share its cache).
NOT_GENERATOR = ("fraction", "figures")


class DeepConfuse(PoisonAttack):
    """DeepConfuse: bounded training-time noise from an auto-encoder trained against a surrogate.

    Reference: Feng, Cai & Zhou, "Learning to Confuse: Generating Training Time Adversarial Data with
    Auto-Encoder", NeurIPS 2019, https://arxiv.org/abs/1905.09027. Solves problem (4) with
    Algorithm 2 (memory-efficient; ``algorithm=1``: Algorithm 1, stored trajectory): a generator
    g_ξ(x) = ε·tanh(·) (eq. 3) is updated through one-step pseudo-updates (eq. 5) of a surrogate
    retrained from scratch in each of ``trials`` trials. ``target=shift`` is the label-specific
    variant of Section 4 with η(y) = (y + shift) mod K. The generator is cached per dataset, seed
    and settings (not ``fraction``): a fraction sweep trains it once. Deviations from the paper's
    MNIST settings (α_f = 0.01 plain SGD, batch 64, α_g = 1e-4, T = 500) are sized for CPU runs:
    T = 15, momentum 0.9, and batch size, learning rates and trial length chosen from the
    data's size and image size (``schedule.py``: batch ≤ 128, α_f = 0.05·B/128, trials of at least
    1.5 passes and 20·√(H·W/64) steps, α_g = max(1e-4, 1e-3·20/steps)). ``select=best`` keeps the
    generator whose trial hurt its surrogate most instead of the last one. See the README.
    """

    name = "deepconfuse"
    declared_metrics = (
        Metric("noise_train_acc", False, "Table 2: the victim's accuracy on the training images' noise alone, "
                                         "f(g(x)), against their true labels"),
        Metric("noise_test_acc", False, "Table 2: the same on the test images' noise"),
        Metric("noise_class_share", False, "share of the training noise's variance explained by the class "
                                           "(1: a pure class-wise pattern)"),
        Metric("generator_objective", False, "the generator's pseudo-update objective over the last trial (it "
                                             "rises when untargeted, falls when target=shift)", fraction=False),
        Metric("seconds_generator", False, "seconds spent training the generator (recorded with it, so a "
                                          "cached generator reports its original crafting time)", fraction=False),
    )
    params = (
        eps_param(),
        Param("trials", int, 15, "T: trials, each retraining the surrogate from scratch", low=1),
        fraction_param(1.0),
        Param("target", str, "none", "none: untargeted (Sec. 3); shift: label-specific, eta(y)=(y+shift) mod K",
              choices=("none", "shift")),
        Param("shift", int, 1, "label shift of the label-specific variant", low=1),
        Param("surrogate", str, None, "surrogate victim spec (None: deepconfuse-cnn for grayscale, cnn5 for colour)",
              kind="victims"),
        Param("maxiter", int, None, "surrogate SGD steps per trial (None: from the data size, see schedule.py; "
                                    "0: one pass over the data)", low=0),
        Param("batch_size", int, None, "mini-batch size of surrogate and generator updates (None: from the "
                                       "data size, at most 128)", low=1),
        Param("lr_f", float, None, "alpha_f: surrogate SGD rate and pseudo-update step (None: 0.05 x batch/128)",
              low=0.0),
        Param("momentum", float, 0.9, "surrogate SGD momentum (0: the paper's plain SGD)", low=0.0, high=0.999),
        Param("lr_g", float, None, "alpha_g: generator Adam rate (None: max(1e-4, 1e-3 x 20 / maxiter))", low=0.0),
        Param("algorithm", int, 2, "1: stored trajectory, 2: memory-efficient", choices=(1, 2)),
        Param("select", str, "last", "last: the final generator (the paper); best: the generator whose trial's "
                                     "surrogate scored lowest on clean data", choices=SELECT),
        Param("generator", str, "auto", "auto: encoder-decoder for grayscale, U-Net for colour", choices=KINDS),
        Param("figures", bool, True, "save the Figure 3 (feature PCA), Figure 10 (confusion) and per-trial convergence plots"),
    )
    test_spec = "deepconfuse:trials=1,maxiter=4,surrogate=graynet"

    def surrogate_spec(self, info) -> str:
        return self.p.surrogate or ("cnn5" if info.colour else "deepconfuse-cnn")

    def incompatibility(self, info, victim):
        missing = missing_budget(self.p.eps, "linf", info)
        if missing:
            return missing
        try:
            surrogate = self.create("victims", self.surrogate_spec(info))
        except SpecError as error:
            return f"deepconfuse: bad surrogate: {error}"
        if surrogate.framework != "torch":
            return f"deepconfuse: the surrogate must be a torch model, not {surrogate.framework}"
        if self.p.target == "shift" and self.p.shift % info.num_classes == 0:
            return f"deepconfuse: shift={self.p.shift} maps every label to itself"
        return None

    def settings(self, train: TensorData) -> ConfuseSettings:
        """The parameters, with batch size, surrogate rate and trial length filled in from the data."""
        n, (height, width) = len(train), train.x.shape[-2:]
        batch = self.p.batch_size or schedule.batch_size(n)
        maxiter = schedule.trial_steps(n, batch, height, width) if self.p.maxiter is None else self.p.maxiter
        lr_f = schedule.surrogate_rate(batch) if self.p.lr_f is None else self.p.lr_f
        steps = maxiter or -(-n // batch)
        lr_g = schedule.generator_rate(steps) if self.p.lr_g is None else self.p.lr_g
        return ConfuseSettings(
            trials=self.p.trials, maxiter=maxiter, batch_size=batch, lr_f=lr_f, momentum=self.p.momentum,
            lr_g=lr_g, algorithm=self.p.algorithm, select=self.p.select,
            shift=self.p.shift if self.p.target == "shift" else 0,
        )

    # ---- the generator: trained once per (data, seed, settings), cached as safetensors ----------
    def trained_generator(self, train: TensorData, ctx: CraftingContext) -> tuple[torch.nn.Module, dict, bool]:
        eps = float(resolve_budget(self.p.eps, "linf", ctx))
        channels = train.x.shape[1]

        def compute():
            tick = time.perf_counter()
            torch.manual_seed(ctx.seed)
            generator = build_generator(channels, eps, self.p.generator).to(ctx.device)
            records = []
            if eps > 0:  # ε = 0: the noise is identically zero, nothing to learn
                surrogate = self.create("victims", self.surrogate_spec(ctx.info))
                shape, classes = ctx.info.input_shape, ctx.info.num_classes
                records = train_generator(
                    generator, lambda: surrogate.build(shape, classes).to(ctx.device), train.to(ctx.device),
                    classes, self.settings(train), seed=ctx.seed, progress=ctx.progress)
            info = {"diagnostics": as_tensor(records).tolist(), "seconds": time.perf_counter() - tick}
            return generator.state_dict(), info

        generator_values = {k: v for k, v in self.values.items() if k not in NOT_GENERATOR}
        state, info, cached = ctx.cached("deepconfuse-generator", (self.version, generator_values, eps,
                                         train.fingerprint(), ctx.seed, ctx.info.num_classes), compute)
        generator = build_generator(channels, eps, self.p.generator).to(ctx.device)
        generator.load_state_dict(state)
        return generator.eval().requires_grad_(False), info, cached

    def craft(self, train: TensorData, ctx: CraftingContext) -> PoisonedSet:
        train = train.to(ctx.device)
        generator, info, cached = self.trained_generator(train, ctx)
        mask = choose(len(train), self.p.fraction, ctx.generator(401), train.device)
        x = train.x.clone()
        x[mask] = poisoned(train.x[mask], noise_of(generator, train.x[mask]))
        extras = {GENERATOR_PREFIX + k: v for k, v in generator.state_dict().items()}
        extras.update(eps=torch.tensor(generator.eps), generator_cached=torch.tensor(cached),
                      diagnostics=torch.tensor(info["diagnostics"], dtype=torch.float64).reshape(-1, len(FIELDS)),
                      seconds_generator=torch.tensor(float(info["seconds"])))
        return PoisonedSet(TensorData(x, train.y), mask, extras)

    # ---- metrics ---------------------------------------------------------------------------------
    def generator_from(self, poison: PoisonedSet, ctx: Context) -> torch.nn.Module:
        state = {k[len(GENERATOR_PREFIX):]: v for k, v in poison.extras.items() if k.startswith(GENERATOR_PREFIX)}
        generator = build_generator(ctx.info.channels, float(poison.extras["eps"]), self.p.generator)
        generator.load_state_dict(state)
        return generator.to(ctx.device).eval()

    @staticmethod
    def last_trial(poison: PoisonedSet, field: str) -> float:
        diagnostics = poison.extras["diagnostics"]
        return float(diagnostics[-1, FIELDS.index(field)]) if len(diagnostics) else float("nan")

    def target_of(self, y: torch.Tensor, num_classes: int) -> torch.Tensor:
        return (y + self.p.shift) % num_classes

    def metrics(self, poison: PoisonedSet, fitted: Fitted, splits: DataSplits, ctx: Context) -> dict:
        generator = self.generator_from(poison, ctx)
        classifier, train, test = fitted.classifier, splits.train, splits.test
        classes = ctx.info.num_classes
        noise_train, noise_test = noise_of(generator, train.x), noise_of(generator, test.x)
        predictions = classifier.predict(test.x).to(test.y.device)
        out = {
            # Table 2: the victim's accuracy on the noise alone, f(g(x)), against the true labels.
            "noise_train_acc": classifier.accuracy(noise_train, train.y),
            "noise_test_acc": classifier.accuracy(noise_test, test.y),
            "noise_class_share": class_share(noise_train, train.y, classes),
            "generator_cache_hit": bool(poison.extras["generator_cached"]),
            "generator_objective": self.last_trial(poison, "objective"),
            "seconds_generator": float(poison.extras["seconds_generator"]),
        }
        if self.p.target == "shift":
            out["targeted_success_rate"] = (predictions == self.target_of(test.y, classes)).float().mean().item()
        if self.p.figures:
            self.save_figures(poison, classifier, predictions, splits, ctx)
        return out

    def save_figures(self, poison: PoisonedSet, classifier, predictions, splits: DataSplits, ctx: Context) -> None:
        folder = figures.figure_dir(ctx)
        if folder is None:
            return
        stem = figures.figure_stem(ctx, self.spec, predictions)
        matrix = figures.confusion_matrix(predictions, splits.test.y, ctx.info.num_classes)
        accuracy = (predictions == splits.test.y).float().mean().item()
        figures.save_confusion(matrix, ctx.info.class_names, f"{stem}\nclean test acc {accuracy:.3f}",
                               folder / f"{stem}-confusion.png")
        diagnostics = poison.extras["diagnostics"]
        if len(diagnostics):
            figures.save_convergence(diagnostics.cpu().numpy(), FIELDS, f"{stem}\ngenerator training per trial",
                                     folder / f"{stem}-convergence.png")
        victim = ctx.victim
        if isinstance(classifier, TorchClassifier) and victim is not None and victim.has_split:
            representation, _ = victim.split(classifier.module)
            with torch.inference_mode():
                def features(x):
                    parts = []
                    for start in range(0, len(x), 1024):
                        part = x[start : start + 1024].to(classifier.device)
                        part = classifier.transform(part) if classifier.transform else part
                        parts.append(representation(part).flatten(1))
                    return torch.cat(parts)

                train_features, test_features = features(poison.data.x), features(splits.test.x)
            figures.save_feature_pca(train_features, poison.data.y, test_features, splits.test.y, stem,
                                     folder / f"{stem}-features.png")


ALL = [DeepConfuse]
