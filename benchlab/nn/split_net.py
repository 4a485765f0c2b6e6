"""Split networks: ``classifier(features(x))``, so a victim's representation split is two submodules.

Methods that act on features (representation-level defenses, DeepConfuse's feature figures) need a
victim's ``split``; building the model as a :class:`SplitNet` and the victim as a
:class:`SplitVictim` gives it for free.
"""

from __future__ import annotations

import torch
from torch import nn

from ..interfaces import Victim


class SplitNet(nn.Module):
    """``classifier(features(x))``: ``features`` ends in the flat representation the head reads."""

    def __init__(self, features: nn.Module, classifier: nn.Module):
        super().__init__()
        self.features = features
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class SplitVictim(Victim):
    """A torch victim whose model is a SplitNet: representation = ``features``, head = ``classifier``."""

    def split(self, model: SplitNet) -> tuple[nn.Module, nn.Module]:
        return model.features, model.classifier


@torch.no_grad()
def flat_size(features: nn.Module, input_shape: tuple[int, int, int]) -> int:
    """Width of ``features``' flattened output, measured (eval mode: BatchNorm stats untouched)."""
    was_training = features.training
    features.eval()
    size = features(torch.zeros(2, *input_shape)).flatten(1).shape[1]
    features.train(was_training)
    return size


def with_fc_head(conv: list[nn.Module], input_shape, hidden: tuple[int, ...], num_classes: int) -> SplitNet:
    """Conv trunk + flatten + ReLU hidden layers (all in ``features``) + a linear classifier."""
    trunk = nn.Sequential(*conv, nn.Flatten())
    width = flat_size(trunk, input_shape)
    layers = list(trunk)
    for units in hidden:
        layers += [nn.Linear(width, units), nn.ReLU()]
        width = units
    return SplitNet(nn.Sequential(*layers), nn.Linear(width, num_classes))
