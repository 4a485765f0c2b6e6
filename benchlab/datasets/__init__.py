"""Built-in dataset sources (registered as the ``benchlab.datasets`` built-in plugin)."""

from ..hookspecs import hookimpl


@hookimpl
def register_datasets(register):
    from .digits import Digits

    register(Digits)
