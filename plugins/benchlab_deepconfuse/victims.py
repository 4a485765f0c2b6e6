"""CNN_large and CNN_small of DeepConfuse's transfer study: the MNIST CNN with scaled widths.

Section 5.2 of Feng, Cai & Zhou (NeurIPS 2019): "we doubled/halved all the channels/hidden units"
of the original conv20-conv50-fc500 network. The original itself is the baselines' ``deepconfuse-cnn``.
"""

from __future__ import annotations

from benchlab import ADAM_RECIPE, Param, SplitNet, SplitVictim, two_conv_net


def scaled_deepconfuse_cnn(input_shape, num_classes: int, width: float) -> SplitNet:
    """conv(20w)-5x5, pool, conv(50w)-5x5, pool, fc(500w); small inputs zero-padded to 28x28."""
    return two_conv_net(input_shape, num_classes, *(max(1, round(n * width)) for n in (20, 50, 500)))


class ScaledDeepConfuseCNN(SplitVictim):
    """DeepConfuse's MNIST CNN with every width scaled (width=2: CNN_large, width=0.5: CNN_small).

    Reference: Feng, Cai, Zhou, "Learning to Confuse: Generating Training Time Adversarial Data with
    Auto-Encoder", NeurIPS 2019, arXiv:1905.09027, Section 5.2 / Figure 6 (transferability).
    """

    name = "deepconfuse-cnn-scaled"
    params = (Param("width", float, 2.0, "channel and hidden-unit multiplier (2: large, 0.5: small)",
                    low=0.05, high=8.0),)
    recipe = ADAM_RECIPE

    def build(self, input_shape, num_classes):
        return scaled_deepconfuse_cnn(input_shape, num_classes, self.p.width)


ALL = [ScaledDeepConfuseCNN]
