"""Every registered plugin passes the contract checks plugin authors run (benchlab.testing)."""

import pytest

from benchlab.plugins import get_registry
from benchlab.testing import check_plugin

REGISTRY = get_registry()
HEAVY_VICTIMS = {"densenet40", "resnet32"}  # covered by their own build tests; slow on CPU


@pytest.mark.parametrize("kind, name", [
    (kind, name) for kind in ("attacks", "defenses", "victims", "datasets") for name in REGISTRY.names(kind)
    if not (kind == "victims" and name in HEAVY_VICTIMS)
])
def test_registered_plugin_honours_its_contract(kind, name):
    check_plugin(kind, name=name)
