"""Baseline victims: the architectures the reproduced papers train, timm models, and two sklearn models.

Torch victims build :class:`benchlab.SplitNet` modules (``features`` -> ``classifier``), so
``split`` is the pair of submodules. Recipes are sized for small images on a CPU; a matrix's
``recipe_overrides`` or a defense change single fields.
"""

from __future__ import annotations

import difflib

from torch import nn

from benchlab import ADAM_RECIPE, Param, Recipe, SpecError, SplitVictim, Victim

from . import models_cifar, models_small

ADAM = ADAM_RECIPE
SGD_DEEP = Recipe(optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=5e-4, epochs=30, schedule="cosine")


class MLP(SplitVictim):
    """Two-hidden-layer ReLU perceptron (hidden1 x hidden2 units, optional dropout).

    Reference: Huang, Xu, Schuurmans, Szepesvari, "Learning with a Strong Adversary" (LWA), 2015,
    arXiv:1511.03034 -- MNIST MLPs of several n x m hidden sizes.
    """

    name = "mlp"
    params = (
        Param("hidden1", int, 100, "units in the first hidden layer", low=1),
        Param("hidden2", int, 100, "units in the second hidden layer", low=1),
        Param("dropout", float, 0.0, "dropout after each hidden layer", low=0.0, high=0.9),
    )
    recipe = ADAM

    def build(self, input_shape, num_classes):
        return models_small.mlp(input_shape, num_classes, self.p.hidden1, self.p.hidden2, self.p.dropout)


class LeNet5(SplitVictim):
    """LeNet-5: conv6-5x5, pool, conv16-5x5, pool, fc120, fc84 (ReLU, max-pool; small inputs padded).

    Reference: LeCun, Bottou, Bengio, Haffner, "Gradient-Based Learning Applied to Document
    Recognition", Proceedings of the IEEE, 1998.
    """

    name = "lenet5"
    recipe = ADAM

    def build(self, input_shape, num_classes):
        return models_small.lenet5(input_shape, num_classes)


class DeepConfuseCNN(SplitVictim):
    """DeepConfuse's MNIST classifier: conv20-5x5, pool, conv50-5x5, pool, fc500.

    Reference: Feng, Cai, Zhou, "Learning to Confuse: Generating Training Time Adversarial Data with
    Auto-Encoder", NeurIPS 2019, arXiv:1905.09027.
    """

    name = "deepconfuse-cnn"
    recipe = ADAM

    def build(self, input_shape, num_classes):
        return models_small.deepconfuse_cnn(input_shape, num_classes)


class CNN5(SplitVictim):
    """DeepConfuse's 5-conv CNN: 32-64-128-128-128 3x3 conv-BN-ReLU, pooling, global pool, linear.

    Reference: Feng, Cai, Zhou, "Learning to Confuse: Generating Training Time Adversarial Data with
    Auto-Encoder", NeurIPS 2019, arXiv:1905.09027.
    """

    name = "cnn5"
    recipe = Recipe(optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=5e-4, epochs=20, schedule="cosine")

    def build(self, input_shape, num_classes):
        return models_small.cnn5(input_shape, num_classes)


class GrayNet(SplitVictim):
    """EvoShift's GrayNet: 24C3-P-48C3-P-256FC-10S.

    Reference: "Adversarial training-time attack against discriminative and generative convolutional
    models", IEEE Access, 2021 (EvoShift).
    """

    name = "graynet"
    recipe = ADAM

    def build(self, input_shape, num_classes):
        return models_small.graynet(input_shape, num_classes)


class ColorNet(SplitVictim):
    """EvoShift's ColorNet: 32C3-32C3-P-64C3-64C3-P-128C3-128C3-P-512FC-10S.

    Reference: "Adversarial training-time attack against discriminative and generative convolutional
    models", IEEE Access, 2021 (EvoShift).
    """

    name = "colornet"
    recipe = ADAM

    def build(self, input_shape, num_classes):
        return models_small.colornet(input_shape, num_classes)


class _CifarResNet(SplitVictim):
    depth = 0
    params = (Param("shortcut", str, "a", "a: zero-padding identity (paper's CIFAR choice); b: 1x1 conv",
                    choices=("a", "b")),)
    recipe = SGD_DEEP

    def build(self, input_shape, num_classes):
        return models_cifar.resnet_cifar(self.depth, input_shape, num_classes, self.p.shortcut)


class ResNet20(_CifarResNet):
    """CIFAR ResNet-20 (3 stages of 3 basic blocks, 16/32/64 channels, ~0.27M parameters).

    Reference: He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016,
    arXiv:1512.03385 (Sec. 4.2).
    """

    name = "resnet20"
    depth = 20


class ResNet32(_CifarResNet):
    """CIFAR ResNet-32 (3 stages of 5 basic blocks, 16/32/64 channels, ~0.46M parameters).

    Reference: He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016,
    arXiv:1512.03385 (Sec. 4.2).
    """

    name = "resnet32"
    depth = 32


class DenseNet40(SplitVictim):
    """CIFAR DenseNet-40 (growth 12, three dense blocks of 12 BN-ReLU-Conv3x3 layers, ~1.0M parameters).

    Reference: Huang, Liu, van der Maaten, Weinberger, "Densely Connected Convolutional Networks",
    CVPR 2017, arXiv:1608.06993.
    """

    name = "densenet40"
    recipe = SGD_DEEP.override(weight_decay=1e-4, batch_size=64)

    def build(self, input_shape, num_classes):
        return models_cifar.densenet_cifar(input_shape, num_classes, depth=40, growth=12)


class _TimmRepresentation(nn.Module):
    """Everything of a timm model before its final classifier: forward_features + pooling (pre-logits)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model.forward_head(self.model.forward_features(x), pre_logits=True)


class Timm(Victim):
    """Any timm architecture by name, e.g. timm:resnet18 (random init; weights are never downloaded).

    Reference: Wightman, "PyTorch Image Models", https://github.com/huggingface/pytorch-image-models.
    """

    name = "timm"
    params = (
        Param("model", str, None, "timm model name, e.g. resnet18 (see timm.list_models())", required=True),
        Param("img_size", bool, False, "pass the dataset's image size to timm (fixed-grid models: ViTs)"),
    )
    recipe = Recipe(optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=5e-4, epochs=20, schedule="cosine")
    test_spec = "timm:resnet18"

    def __init__(self, **values):
        super().__init__(**values)
        import timm

        # Fail at spec resolution, not deep inside a run, and suggest what the user meant.
        if not self.p.model:
            raise SpecError("timm: parameter 'model' is required, e.g. timm:resnet18")
        if not timm.is_model(self.p.model):
            near = difflib.get_close_matches(self.p.model, timm.list_models(), n=5, cutoff=0.6)
            hint = f"did you mean {', '.join(near)}?" if near else "see timm.list_models()"
            raise SpecError(f"timm: unknown model {self.p.model!r}; {hint}")

    def build(self, input_shape, num_classes):
        import timm

        extra = {"img_size": tuple(input_shape[1:])} if self.p.img_size else {}
        return timm.create_model(self.p.model, pretrained=False, num_classes=num_classes,
                                 in_chans=input_shape[0], **extra)

    def split(self, model):
        # timm's contract: forward_head(f) == get_classifier()(forward_head(f, pre_logits=True)).
        return _TimmRepresentation(model), model.get_classifier()


class RandomForest(Victim):
    """scikit-learn random forest on flattened pixels (trees, n_jobs).

    Reference: Breiman, "Random Forests", Machine Learning 45, 2001.
    """

    name = "random-forest"
    framework = "sklearn"
    params = (
        Param("trees", int, 300, "number of trees", low=1),
        Param("n_jobs", int, 1, "parallel jobs (-1 = all cores)", low=-1),
    )

    def build(self, input_shape, num_classes):
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(n_estimators=self.p.trees, n_jobs=self.p.n_jobs)


class SVMRBF(Victim):
    """scikit-learn RBF-kernel support vector machine on flattened pixels (gamma, C).

    Reference: Cortes, Vapnik, "Support-Vector Networks", Machine Learning 20, 1995.
    """

    name = "svm-rbf"
    framework = "sklearn"
    params = (
        Param("gamma", float, 0.01, "RBF kernel width: k(x, x') = exp(-gamma ||x - x'||^2)", low=1e-9),
        Param("C", float, 1.0, "inverse regularisation strength", low=1e-9),
    )

    def build(self, input_shape, num_classes):
        from sklearn.svm import SVC

        return SVC(kernel="rbf", gamma=self.p.gamma, C=self.p.C)


ALL = [MLP, LeNet5, DeepConfuseCNN, CNN5, GrayNet, ColorNet, ResNet20, ResNet32, DenseNet40, Timm,
       RandomForest, SVMRBF]
