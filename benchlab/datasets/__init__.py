"""Built-in dataset sources (registered as the ``benchlab.datasets`` built-in plugin)."""

from ..hookspecs import hookimpl


@hookimpl
def register_datasets(register):
    from .digits import Digits
    from .mnist import MNIST, FashionMNIST
    from .torchvision_sources import CIFAR10, STL10, SVHN

    for cls in (Digits, MNIST, FashionMNIST, CIFAR10, SVHN, STL10):
        register(cls)
