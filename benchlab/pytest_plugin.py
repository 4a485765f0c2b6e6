"""pytest fixtures for plugin authors (loaded through benchlab's ``pytest11`` entry point).

``benchlab_registry`` is a registry of the built-in datasets plus just the plugin under test, named
by the ``benchlab_plugin`` ini option (``[tool.pytest.ini_options] benchlab_plugin = "my_package"``):
other installed plugins cannot mask a missing registration or collide with it.
"""

from __future__ import annotations

import importlib

import pytest

from .plugins import Registry, build_registry, make_plugin_manager


def pytest_addoption(parser):
    parser.addini("benchlab_plugin", "module of the benchlab plugin under test (for the benchlab_registry fixture)")


@pytest.fixture(scope="session")
def benchlab_registry(request) -> Registry:
    module_name = request.config.getini("benchlab_plugin")
    if not module_name:
        pytest.fail("benchlab_registry needs the plugin's module: set benchlab_plugin = \"my_package\" under "
                    "[tool.pytest.ini_options]")
    module = importlib.import_module(module_name)
    return build_registry(make_plugin_manager(extra_plugins=[module], autoload=False), strict=True)
