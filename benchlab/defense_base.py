"""``TrainingDefense``: the base most defenses need, built on the shared trainer.

A subclass changes one or more of: the recipe (optimizer, weight decay, ...), the model
(``build_model``), the optimizer object (one torch does not ship), the per-batch objective, a
training-time batch transform (augmentation, noise), or an input transform applied at training
*and* test time (median filter). scikit-learn victims get the same data transforms applied before
``estimator.fit``.
"""

from __future__ import annotations

import torch

from .classifier import SklearnClassifier, TorchClassifier
from .context import Context
from .data import TensorData
from .generative import GenerativeHistory, TrainedGenerative
from .interfaces import Defense, Fitted, Victim
from .sklearn_io import estimator_from_tensor, estimator_to_tensor
from .train import History, Recipe, cross_entropy, fit


class TrainingDefense(Defense):
    """Trains the victim with the shared loop; override the hooks below to change one thing."""

    frameworks = ("torch", "sklearn")
    checkpointable = True

    # ---- hooks -------------------------------------------------------------------------------
    def recipe(self, victim: Victim, ctx: Context) -> Recipe:
        return ctx.recipe(victim)

    def build_model(self, victim: Victim, ctx: Context):
        return victim.build(ctx.info.input_shape, ctx.info.num_classes)

    def optimizer(self, model, recipe: Recipe, ctx: Context) -> torch.optim.Optimizer | None:
        """The optimizer for ``model``; None: the recipe's (SGD, Adam or RMSprop, see ``make_optimizer``)."""
        return None

    def objective(self, model, victim: Victim, ctx: Context):
        """Per-batch loss ``(model, x, y) -> (loss, logits)``; plain cross-entropy by default."""
        return cross_entropy

    def batch_transform(self, ctx: Context):
        """Training-only ``(x, y, generator) -> (x, y)``, e.g. augmentation; None for none."""
        return None

    def input_transform(self, ctx: Context):
        """``x -> x`` applied before the model at training and test time; None for none."""
        return None

    # ---- the procedure -----------------------------------------------------------------------
    def fit(self, victim: Victim, train: TensorData, ctx: Context) -> Fitted:
        if victim.generative:
            return self._fit_generative(victim, train, ctx)
        if victim.framework == "sklearn":
            return self._fit_sklearn(victim, train, ctx)
        torch.manual_seed(ctx.seed)
        model = self.build_model(victim, ctx).to(ctx.device)
        train = train.to(ctx.device)
        monitor = ctx.monitor.to(ctx.device) if ctx.monitor is not None else None
        recipe = self.recipe(victim, ctx)
        history = fit(
            model, train, recipe, seed=ctx.seed, monitor=monitor,
            objective=self.objective(model, victim, ctx), batch_transform=self.batch_transform(ctx),
            input_transform=self.input_transform(ctx), optimizer=self.optimizer(model, recipe, ctx),
            progress=ctx.progress, desc=f"{self.spec}/{victim.spec}",
        )
        return Fitted(TorchClassifier(model, self.input_transform(ctx)), history)

    def checkpoint(self, fitted: Fitted) -> tuple[dict, dict]:
        """Tensors and JSON info to cache a fitted model (see ``restore``): a torch state dict, or
        a scikit-learn estimator serialised with skops (:mod:`benchlab.sklearn_io`, never pickle)."""
        history = fitted.history.as_dict() if fitted.history else {}
        info = {"history": history, "metrics": fitted.metrics}
        if fitted.generative is not None:
            return fitted.generative.module.state_dict(), info
        if isinstance(fitted.classifier, SklearnClassifier):
            return {"estimator": estimator_to_tensor(fitted.classifier.estimator)}, info
        return fitted.classifier.module.state_dict(), info

    def restore(self, victim: Victim, tensors: dict, info: dict, ctx: Context) -> Fitted:
        if victim.generative:
            model = self.build_model(victim, ctx)
            model.load_state_dict(tensors)
            history = GenerativeHistory(**info.get("history", {}))
            return Fitted(None, history, info.get("metrics", {}), TrainedGenerative(victim, model.to(ctx.device)))
        history, metrics = History(**info.get("history", {})), info.get("metrics", {})
        if victim.framework == "sklearn":
            estimator = estimator_from_tensor(tensors["estimator"])
            return Fitted(SklearnClassifier(estimator, ctx.info.num_classes, self.input_transform(ctx)), history,
                          metrics)
        model = self.build_model(victim, ctx)
        model.load_state_dict(tensors)
        return Fitted(TorchClassifier(model.to(ctx.device), self.input_transform(ctx)), history, metrics)

    def _fit_generative(self, victim: Victim, train: TensorData, ctx: Context) -> Fitted:
        """The victim's own objective on the training images (labels unused), with this defense's recipe."""
        torch.manual_seed(ctx.seed)
        model = self.build_model(victim, ctx).to(ctx.device)
        history = victim.fit(model, train.x.to(ctx.device), self.recipe(victim, ctx), ctx)
        return Fitted(None, history, generative=TrainedGenerative(victim, model))

    def _fit_sklearn(self, victim: Victim, train: TensorData, ctx: Context) -> Fitted:
        estimator = victim.build(ctx.info.input_shape, ctx.info.num_classes)
        x, y = train.x.cpu(), train.y.cpu()
        augment = self.batch_transform(ctx)
        if augment is not None:  # the original set plus one transformed copy (no epochs to spread them over)
            x_aug, y_aug = augment(x, y, ctx.generator(salt=17))
            x, y = torch.cat([x, x_aug]), torch.cat([y, y_aug])
        transform = self.input_transform(ctx)
        if hasattr(estimator, "random_state"):
            estimator.set_params(random_state=ctx.seed)
        classifier = SklearnClassifier(estimator, ctx.info.num_classes, transform)
        estimator.fit(classifier.features(x), y.numpy())
        history = History(train_acc=[classifier.accuracy(train.x.cpu(), train.y.cpu())])
        if ctx.monitor is not None:
            history.test_acc.append(classifier.accuracy(ctx.monitor.x.cpu(), ctx.monitor.y.cpu()))
        return Fitted(classifier, history)
