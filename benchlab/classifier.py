"""A trained model as attacks and metrics see it: torch modules and scikit-learn estimators alike."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

InputTransform = Callable[[torch.Tensor], torch.Tensor]


class Classifier:
    """Maps images (N, C, H, W) in [0, 1] to class scores; applies the defense's test-time transform."""

    differentiable: bool = False

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def predict(self, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
        """Predicted labels, computed in batches."""
        return torch.cat([self.logits(x[i : i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)])

    def accuracy(self, x: torch.Tensor, y: torch.Tensor) -> float:
        if len(y) == 0:
            return float("nan")
        return (self.predict(x).to(y.device) == y).float().mean().item()


class TorchClassifier(Classifier):
    """A torch module in eval mode, behind an optional input transform (e.g. a median filter)."""

    differentiable = True

    def __init__(self, module: nn.Module, transform: InputTransform | None = None):
        self.module = module.eval()
        self.transform = transform

    @property
    def device(self) -> torch.device:
        return next(self.module.parameters()).device

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        if self.module.training:  # attacks and metrics must never update BatchNorm statistics
            self.module.eval()
        x = x.to(self.device)
        if self.transform is not None:
            x = self.transform(x)
        return self.module(x)

    def predict(self, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
        with torch.inference_mode():
            return super().predict(x, batch_size)


class SklearnClassifier(Classifier):
    """A fitted scikit-learn estimator on flattened pixels; gradient-based attacks do not apply."""

    def __init__(self, estimator, num_classes: int, transform: InputTransform | None = None):
        self.estimator = estimator
        self.num_classes = num_classes
        self.transform = transform

    def features(self, x: torch.Tensor) -> np.ndarray:
        if self.transform is not None:
            x = self.transform(x)
        return x.detach().flatten(1).cpu().numpy()

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        features = self.features(x)
        scores = np.full((len(x), self.num_classes), -1e4, dtype=np.float32)
        if hasattr(self.estimator, "predict_proba") and getattr(self.estimator, "probability", True):
            scores[:, self.estimator.classes_] = np.log(self.estimator.predict_proba(features) + 1e-12)
        else:  # e.g. SVC without Platt scaling: one-vs-rest decision values are the scores
            scores[:, self.estimator.classes_] = self.estimator.decision_function(features)
        return torch.from_numpy(scores).to(x.device)

    def predict(self, x: torch.Tensor, batch_size: int = 0) -> torch.Tensor:
        return torch.as_tensor(self.estimator.predict(self.features(x)), dtype=torch.long, device=x.device)
