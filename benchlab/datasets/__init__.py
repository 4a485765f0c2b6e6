"""Built-in dataset sources (registered as the ``benchlab.datasets`` built-in plugin)."""

from ..hookspecs import hookimpl
from ..params import SpecError


def _builtin_classes():
    from .digits import Digits
    from .mnist import MNIST, FashionMNIST
    from .torchvision_sources import CIFAR10, STL10, SVHN

    return (Digits, MNIST, FashionMNIST, CIFAR10, SVHN, STL10)


@hookimpl
def register_datasets(register):
    for cls in _builtin_classes():
        register(cls)


def dataset_installed(name: str, data_root=None) -> bool:
    """Whether the built-in dataset ``name`` is on disk without a download (``digits``: always).

    Presets use it to leave out blocks whose data is absent, without loading the data.
    """
    classes = {cls.name: cls for cls in _builtin_classes()}
    cls = classes.get(name)
    if cls is None or not hasattr(cls, "installed"):
        known = sorted(n for n, c in classes.items() if hasattr(c, "installed"))
        raise SpecError(f"cannot tell whether dataset {name!r} is installed; known: {', '.join(known)}")
    return cls().installed(data_root)
