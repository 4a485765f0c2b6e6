"""``mlp3``: the paper's fully-connected network, three ReLU hidden layers of equal width (3x1200)."""

from __future__ import annotations

from benchlab_baselines.models_small import SplitNet
from torch import nn

from benchlab.interfaces import Victim
from benchlab.params import Param
from benchlab.train import Recipe


def mlp3(input_shape, num_classes: int, width: int) -> SplitNet:
    """Flattened pixels -> width -> width -> width (ReLU) -> logits."""
    layers: list[nn.Module] = [nn.Flatten()]
    size = input_shape[0] * input_shape[1] * input_shape[2]
    for _ in range(3):
        layers += [nn.Linear(size, width), nn.ReLU()]
        size = width
    return SplitNet(nn.Sequential(*layers), nn.Linear(size, num_classes))


class MLP3(Victim):
    """Three-hidden-layer ReLU perceptron of equal width (the adversary-critic paper's 3x1200 MNIST net).

    Reference: Matyasko & Chau, "Improved Network Robustness with Adversary Critic", NeurIPS 2018,
    https://arxiv.org/abs/1810.12576 (Sec. 5: "three hidden layers of size 1200"; Adam, batch 100).
    ``width`` scales it down for small data and CPUs.
    """

    name = "mlp3"
    params = (Param("width", int, 1200, "units in each hidden layer", low=1),)
    recipe = Recipe(optimizer="adam", lr=1e-3, epochs=100, batch_size=100)

    def build(self, input_shape, num_classes):
        return mlp3(input_shape, num_classes, self.p.width)

    def split(self, model: SplitNet):
        return model.features, model.classifier
