"""The paper's two classifiers: ``mlp3`` (three ReLU hidden layers of equal width, 3x1200) and
``lenet5-ac`` (the "LeNet-5" of the authors' released code: 32C5-P-64C5-P-512, not LeCun's 6-16-120-84)."""

from __future__ import annotations

from torch import nn

from benchlab import Param, Recipe, SplitNet, Victim, two_conv_net


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


def lenet5_ac(input_shape, num_classes: int) -> SplitNet:
    """32C5-P-64C5-P-512 with ReLU, unpadded convolutions and 2x2 max-pooling; smaller inputs padded to 28x28."""
    return two_conv_net(input_shape, num_classes, 32, 64, 512)


class LeNet5AC(Victim):
    """The adversary-critic paper's "LeNet-5", as defined in the authors' released code (models.py).

    Reference: Matyasko & Chau, "Improved Network Robustness with Adversary Critic", NeurIPS 2018,
    https://arxiv.org/abs/1810.12576 (Table 1b); code github.com/aam-at/adversary_critic: two 5x5
    VALID convolutions with 32 and 64 maps, each followed by 2x2 max-pooling, one 512-unit layer.
    It has about 10x the multiply-adds of benchlab's LeCun ``lenet5`` (6-16-120-84).
    """

    name = "lenet5-ac"
    recipe = Recipe(optimizer="adam", lr=1e-3, epochs=100, batch_size=100)

    def build(self, input_shape, num_classes):
        return lenet5_ac(input_shape, num_classes)

    def split(self, model: SplitNet):
        return model.features, model.classifier
