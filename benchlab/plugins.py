"""Plugin loading (pluggy + entry points) and the name registry built from the hooks.

Plugins come from the ``benchlab`` entry-point group, exactly like pytest's ``pytest11``; the core
datasets are a built-in plugin registered the same way. ``BENCHLAB_BLOCK_PLUGINS=a,b`` blocks
entry points by name (like ``pytest -p no:name``); ``BENCHLAB_DISABLE_PLUGIN_AUTOLOAD=1`` loads
none but the built-ins.
"""

from __future__ import annotations

import fnmatch
import functools
import os
from dataclasses import dataclass, field

import pluggy

from . import hookspecs
from .interfaces import NAME_PATTERN, DatasetSource, Defense, EvasionAttack, Plugin, PoisonAttack, Victim
from .params import Spec, SpecError, closest, parse_spec, resolve_params

ENTRY_POINT_GROUP = "benchlab"
BUILTINS = ("benchlab.datasets",)
KINDS = {
    "attacks": (PoisonAttack, EvasionAttack),
    "defenses": (Defense,),
    "victims": (Victim,),
    "datasets": (DatasetSource,),
}


class PluginError(RuntimeError):
    """A plugin that breaks the rules (bad name, duplicate name, wrong base class, bad hook)."""


@dataclass
class Entry:
    cls: type[Plugin]
    plugin: str  # the pluggy plugin name that registered it


@dataclass
class Registry:
    """Registered plugin classes by kind and name, with wildcard listing and spec resolution."""

    entries: dict[str, dict[str, Entry]] = field(default_factory=lambda: {k: {} for k in KINDS})
    matrices: dict[str, list[dict]] = field(default_factory=dict)

    def add(self, kind: str, cls: type, plugin: str) -> None:
        bases = KINDS[kind]
        if not (isinstance(cls, type) and issubclass(cls, bases)):
            raise PluginError(f"plugin {plugin!r} registered {cls!r} as {kind[:-1]}, but it does not subclass "
                              f"{' or '.join(b.__name__ for b in bases)}")
        if not NAME_PATTERN.match(cls.name or ""):
            raise PluginError(f"plugin {plugin!r}: {cls.__name__}.name={cls.name!r} must be lowercase with hyphens")
        existing = self.entries[kind].get(cls.name)
        if existing and existing.cls is not cls:
            raise PluginError(f"{kind[:-1]} name {cls.name!r} is registered by both {existing.plugin!r} and {plugin!r}")
        self.entries[kind][cls.name] = Entry(cls, plugin)

    def names(self, kind: str, pattern: str = "*") -> list[str]:
        self._check_kind(kind)
        return sorted(n for n in self.entries[kind] if fnmatch.fnmatchcase(n, pattern.lower()))

    def classes(self, kind: str, pattern: str = "*") -> list[type[Plugin]]:
        return [self.entries[kind][n].cls for n in self.names(kind, pattern)]

    def get(self, kind: str, name: str) -> type[Plugin]:
        self._check_kind(kind)
        try:
            return self.entries[kind][name].cls
        except KeyError:
            raise SpecError(f"unknown {kind[:-1]} {name!r}; {closest(name, self.entries[kind])}") from None

    def create(self, kind: str, spec: str | Spec, **overrides) -> Plugin:
        """Instantiate ``spec`` (e.g. ``pgd:norm=l2,eps=1.5``) with validated parameters."""
        parsed = parse_spec(spec) if isinstance(spec, str) else spec
        cls = self.get(kind, parsed.name)
        values = resolve_params(parsed.name, cls.params, parsed, overrides)
        for param in cls.params:  # nested specs (source=erm) must resolve here, in this registry
            if param.kind is not None and values.get(param.name) is not None:
                try:
                    self.create(param.kind, values[param.name])
                except SpecError as error:
                    raise SpecError(f"{parsed.name}: {param.kind[:-1]} spec {values[param.name]!r} "
                                    f"does not resolve: {error}") from None
        plugin = cls(**values)
        plugin.registry = self
        return plugin

    def plugin_of(self, kind: str, name: str) -> str:
        return self.entries[kind][name].plugin

    def _check_kind(self, kind: str) -> None:
        if kind not in KINDS:
            raise SpecError(f"unknown kind {kind!r}; valid kinds: {', '.join(KINDS)}")


def _blocked() -> list[str]:
    return [n.strip() for n in os.environ.get("BENCHLAB_BLOCK_PLUGINS", "").split(",") if n.strip()]


def make_plugin_manager(extra_plugins=()) -> pluggy.PluginManager:
    """A fresh PluginManager: built-ins, then entry points (minus blocked ones), then ``extra_plugins``."""
    pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
    pm.add_hookspecs(hookspecs)
    for name in _blocked():
        pm.set_blocked(name)
    for module_name in BUILTINS:
        module = __import__(module_name, fromlist=["_"])
        if not pm.is_blocked(module_name):
            pm.register(module, name=module_name)
    if os.environ.get("BENCHLAB_DISABLE_PLUGIN_AUTOLOAD") not in ("1", "true", "yes"):
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    for plugin in extra_plugins:
        pm.register(plugin)
    try:
        pm.check_pending()  # a hook function whose name matches no hookspec is a typo: fail loudly
    except pluggy.PluginValidationError as error:
        raise PluginError(str(error)) from None
    return pm


def build_registry(pm: pluggy.PluginManager) -> Registry:
    """Call every plugin's register hooks, remembering which plugin registered which name."""
    registry = Registry()
    hooks = {
        "attacks": pm.hook.register_attacks,
        "defenses": pm.hook.register_defenses,
        "victims": pm.hook.register_victims,
        "datasets": pm.hook.register_datasets,
    }
    for kind, hook in hooks.items():
        for impl in reversed(hook.get_hookimpls()):  # registration order
            impl.function(register=functools.partial(registry.add, kind, plugin=impl.plugin_name))
    for impl in reversed(pm.hook.register_matrices.get_hookimpls()):
        impl.function(register=lambda preset, block: registry.matrices.setdefault(preset, []).append(block))
    return registry


@functools.lru_cache(maxsize=1)
def _default() -> tuple[pluggy.PluginManager, Registry]:
    pm = make_plugin_manager()
    return pm, build_registry(pm)


def get_plugin_manager() -> pluggy.PluginManager:
    return _default()[0]


def get_registry() -> Registry:
    """The process-wide registry (loaded once); tests call ``reset()`` after changing the environment."""
    return _default()[1]


def reset() -> None:
    _default.cache_clear()


def describe_plugins(pm: pluggy.PluginManager, registry: Registry) -> list[dict]:
    """One record per loaded plugin: distribution, version, hooks implemented and names registered."""
    dists = {id(plugin): dist for plugin, dist in pm.list_plugin_distinfo()}
    records = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None:
            continue
        dist = dists.get(id(plugin))
        registered = {
            kind: sorted(n for n, e in registry.entries[kind].items() if e.plugin == name) for kind in KINDS
        }
        records.append({
            "name": name,
            "module": getattr(plugin, "__name__", repr(plugin)),
            "distribution": dist.project_name if dist else ("benchlab (built-in)" if name in BUILTINS else None),
            "version": dist.version if dist else None,
            "hooks": sorted(h.name for h in pm.get_hookcallers(plugin) or []),
            "registered": {k: v for k, v in registered.items() if v},
        })
    return records


def describe_class(kind: str, cls: type[Plugin], plugin: str) -> dict:
    """A JSON-able description of one registered class (for ``benchlab list --json``)."""
    record = {"name": cls.name, "kind": kind[:-1], "plugin": plugin, "version": cls.version,
              "summary": cls.summary(), "params": [p.describe() for p in cls.params]}
    if kind == "attacks":
        record["threat"] = cls.threat
    if kind == "victims":
        record["framework"] = cls.framework
    return record
