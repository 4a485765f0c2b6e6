"""Hook specifications: what a benchlab plugin may implement (see ``benchlab.hookimpl``)."""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("benchlab")
hookimpl = pluggy.HookimplMarker("benchlab")


@hookspec
def register_attacks(register):
    """Call ``register(cls)`` for each PoisonAttack or EvasionAttack class the plugin provides."""


@hookspec
def register_defenses(register):
    """Call ``register(cls)`` for each Defense class the plugin provides."""


@hookspec
def register_victims(register):
    """Call ``register(cls)`` for each Victim class the plugin provides."""


@hookspec
def register_datasets(register):
    """Call ``register(cls)`` for each DatasetSource class the plugin provides."""


@hookspec
def register_matrices(register):
    """Call ``register(preset, block)`` to add a block (a dict as in a matrix TOML) to a preset."""


@hookspec
def register_paper_results(register):
    """Call ``register(path)`` for each TOML file of a paper's reported numbers that the plugin's
    ``paper`` blocks reproduce (layout: :mod:`benchlab.paper_results`); ``benchlab report`` renders them
    beside the results. ``path`` is a :class:`pathlib.Path` or an ``importlib.resources`` file."""
