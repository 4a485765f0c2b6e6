"""Plugin loading (pluggy + entry points) and the name registry built from the hooks.

Plugins come from the ``benchlab`` entry-point group, exactly like pytest's ``pytest11``; the core
datasets are a built-in plugin registered the same way. ``BENCHLAB_BLOCK_PLUGINS=a,b`` blocks
entry points by name (like ``pytest -p no:name``); ``BENCHLAB_DISABLE_PLUGIN_AUTOLOAD=1`` loads
none but the built-ins.
"""

from __future__ import annotations

import fnmatch
import functools
import importlib.metadata
import os
from dataclasses import dataclass, field

import pluggy

from . import hookspecs
from .code_identity import component
from .interfaces import NAME_PATTERN, DatasetSource, Defense, EvasionAttack, Plugin, PoisonAttack, Victim
from .params import Spec, SpecError, closest, parse_spec, resolve_params

ENTRY_POINT_GROUP = "benchlab"
STRICT_ENV = "BENCHLAB_STRICT_PLUGINS"
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
    # Plugins whose registrations are in, and those left out (blocked, broken, colliding) with why.
    loaded: set[str] = field(default_factory=set)
    problems: list[PluginProblem] = field(default_factory=list)

    @property
    def left_out(self) -> dict[str, PluginProblem]:
        return {p.plugin: p for p in self.problems}

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
            note = ""
            if self.left_out:  # the name may belong to a plugin that was left out: say which were
                note = f" (plugins left out: {', '.join(f'{p} ({q.status})' for p, q in self.left_out.items())})"
            raise SpecError(f"unknown {kind[:-1]} {name!r}; {closest(name, self.entries[kind])}{note}") from None

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


def strict_from_env() -> bool:
    return os.environ.get(STRICT_ENV, "").strip().lower() in ("1", "true", "yes", "on")


@dataclass
class PluginProblem:
    """A plugin left out of the registry, why, and what fixes it (shown by ``benchlab plugins``)."""

    plugin: str  # entry-point name (pluggy plugin name)
    status: str  # blocked | import failed | entry-point collision | name collision | bad hook | bad registration
    reason: str
    fix: str = ""
    distribution: str | None = None

    @property
    def is_error(self) -> bool:
        return self.status != "blocked"

    def line(self) -> str:
        fix = f"; fix: {self.fix}" if self.fix else ""
        return f"plugin {self.plugin!r} left out ({self.status}): {self.reason}{fix}"


@dataclass
class DistInfo:
    """The distribution a plugin came from (what ``list_plugin_distinfo`` reports)."""

    project_name: str
    version: str


class PluginManager(pluggy.PluginManager):
    """pluggy's manager, plus the plugins it left out and the distributions of those it loaded."""

    def __init__(self):
        super().__init__(ENTRY_POINT_GROUP)
        self.problems: list[PluginProblem] = []
        self._dists: list[tuple[object, DistInfo]] = []

    def list_plugin_distinfo(self):
        return list(self._dists)


def make_plugin_manager(extra_plugins=(), strict: bool | None = None, autoload: bool | None = None) -> PluginManager:
    """A fresh PluginManager: built-ins, then entry points (minus blocked ones), then ``extra_plugins``.

    An entry point that fails to import, implements a hook no hookspec names, or shares its name
    with another distribution's entry point is left out and recorded in ``pm.problems`` (both
    sides of a shared name: which one would win depends on install order). ``strict`` (default:
    ``$BENCHLAB_STRICT_PLUGINS``) raises :class:`PluginError` instead. ``extra_plugins`` are the
    caller's own and always fail loudly. ``autoload=False`` loads no entry point (default: unless
    ``$BENCHLAB_DISABLE_PLUGIN_AUTOLOAD`` is set).
    """
    pm = PluginManager()
    pm.add_hookspecs(hookspecs)
    for name in _blocked():
        pm.set_blocked(name)
    for module_name in BUILTINS:
        module = __import__(module_name, fromlist=["_"])
        if not pm.is_blocked(module_name):
            pm.register(module, name=module_name)
    if autoload is None:
        autoload = os.environ.get("BENCHLAB_DISABLE_PLUGIN_AUTOLOAD") not in ("1", "true", "yes")
    if autoload:
        _load_entry_points(pm)
    for plugin in extra_plugins:
        pm.register(plugin)
    try:
        pm.check_pending()  # a hook function whose name matches no hookspec is a typo: fail loudly
    except pluggy.PluginValidationError as error:
        raise PluginError(str(error)) from None
    _raise_if_strict(pm.problems, strict)
    return pm


def _load_entry_points(pm: PluginManager) -> None:
    by_name: dict[str, list] = {}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        by_name.setdefault(ep.name, []).append(ep)
    for name, eps in by_name.items():
        dists = list(dict.fromkeys(ep.dist.name for ep in eps if ep.dist is not None))
        if len(dists) > 1:
            for dist in dists:
                others = ", ".join(d for d in dists if d != dist)
                pm.problems.append(PluginProblem(
                    name, "entry-point collision", f"distributions {' and '.join(dists)} both declare entry "
                    f"point {name!r} in group {ENTRY_POINT_GROUP!r}; neither is loaded",
                    f"uninstall one of them (pip uninstall {others}) or rename its entry point", dist))
            continue
        ep = eps[0]
        dist = ep.dist.name if ep.dist is not None else None
        if pm.is_blocked(name):
            pm.problems.append(PluginProblem(name, "blocked", f"BENCHLAB_BLOCK_PLUGINS names {name!r}",
                                             f"remove {name!r} from BENCHLAB_BLOCK_PLUGINS to load it", dist))
            continue
        fix = f"fix or uninstall {dist or ep.value}, or set BENCHLAB_BLOCK_PLUGINS={name}"
        try:
            module = ep.load()
        except Exception as error:  # any import-time failure of a third-party package
            pm.problems.append(PluginProblem(name, "import failed", f"importing {ep.value} raised "
                                             f"{type(error).__name__}: {error}", fix, dist))
            continue
        try:
            pm.register(module, name=name)
        except (ValueError, pluggy.PluginValidationError) as error:
            pm.problems.append(PluginProblem(name, "bad hook", str(error), fix, dist))
            continue
        typos = sorted(c.name for c in pm.get_hookcallers(module) or [] if not c.has_spec())
        if typos:
            pm.unregister(module)
            valid = ", ".join(sorted(n for n in dir(hookspecs) if n.startswith("register_")))
            pm.problems.append(PluginProblem(name, "bad hook", f"hook {', '.join(typos)} matches no hookspec "
                                             f"(valid: {valid})", fix, dist))
            continue
        if ep.dist is not None:
            pm._dists.append((module, DistInfo(ep.dist.name, ep.dist.version)))


def _raise_if_strict(problems: list[PluginProblem], strict: bool | None) -> None:
    errors = [p for p in problems if p.is_error]
    if errors and (strict_from_env() if strict is None else strict):
        raise PluginError("; ".join(p.line() for p in errors) + f" (strict mode: --strict or {STRICT_ENV})")


def build_registry(pm: pluggy.PluginManager, strict: bool | None = None) -> Registry:
    """Call every plugin's register hooks, remembering which plugin registered which name.

    A plugin whose hook raises or registers something invalid is left out, and so is every plugin
    that registers a name another plugin registers too (all of them: which one would win depends on
    load order); each is recorded in ``registry.problems``. ``strict`` raises instead.
    """
    registry = Registry()
    registry.problems = list(getattr(pm, "problems", []))
    hooks = {
        "attacks": pm.hook.register_attacks,
        "defenses": pm.hook.register_defenses,
        "victims": pm.hook.register_victims,
        "datasets": pm.hook.register_datasets,
    }
    staged: dict[str, list[tuple[str, type]]] = {name: [] for name, plugin in pm.list_name_plugin() if plugin}
    matrices: dict[str, list[tuple[str, dict]]] = {name: [] for name in staged}
    failed: dict[str, PluginProblem] = {}
    calls = [(kind, impl) for kind, hook in hooks.items() for impl in reversed(hook.get_hookimpls())]
    calls += [("matrices", impl) for impl in reversed(pm.hook.register_matrices.get_hookimpls())]
    for kind, impl in calls:  # registration order
        plugin = impl.plugin_name
        if kind == "matrices":
            def register(preset, block, plugin=plugin):
                matrices[plugin].append((preset, block))
        else:
            def register(cls, kind=kind, plugin=plugin):
                staged[plugin].append((kind, cls))
        try:
            impl.function(register=register)
        except Exception as error:  # one plugin's broken hook must not take the others down
            failed[plugin] = PluginProblem(plugin, "bad registration", f"register_{kind} raised "
                                           f"{type(error).__name__}: {error}", _fix(plugin))
    owners: dict[tuple[str, str], dict[str, type]] = {}
    for plugin, entries in staged.items():
        for kind, cls in entries:
            try:
                Registry().add(kind, cls, plugin)  # the class alone: base class and name rules
            except PluginError as error:
                failed.setdefault(plugin, PluginProblem(plugin, "bad registration", str(error), _fix(plugin)))
                continue
            owners.setdefault((kind, cls.name), {}).setdefault(plugin, cls)
    for (kind, name), by_plugin in owners.items():
        if len(by_plugin) > 1:
            plugins = sorted(by_plugin)
            for plugin in plugins:
                others = [p for p in plugins if p != plugin]
                failed.setdefault(plugin, PluginProblem(
                    plugin, "name collision", f"{kind[:-1]} name {name!r} is registered by both "
                    f"{' and '.join(repr(p) for p in plugins)}; neither plugin is loaded",
                    f"set BENCHLAB_BLOCK_PLUGINS={others[0]} (or {plugin}) to keep the other"))
    for plugin, entries in staged.items():
        if plugin in failed:
            continue
        for kind, cls in entries:
            registry.add(kind, cls, plugin)
        for preset, block in matrices[plugin]:
            registry.matrices.setdefault(preset, []).append(block)
        registry.loaded.add(plugin)
    dists = {name: dist for name, dist in ((p.plugin, p.distribution) for p in registry.problems)}
    for problem in failed.values():
        problem.distribution = dists.get(problem.plugin)
        registry.problems.append(problem)
    _raise_if_strict(registry.problems, strict)
    return registry


def _fix(plugin: str) -> str:
    return f"fix or uninstall the plugin, or set BENCHLAB_BLOCK_PLUGINS={plugin}"


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
    """One record per plugin: distribution, version, hooks, names registered, and status (``ok``, or
    why it was left out and the fix)."""
    dists = {id(plugin): dist for plugin, dist in pm.list_plugin_distinfo()}
    left_out = registry.left_out
    records = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None or name in left_out:
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
            "status": "ok", "reason": None, "fix": None,
        })
    for problem in registry.problems:
        records.append({"name": problem.plugin, "module": None, "distribution": problem.distribution,
                        "version": None, "hooks": [], "registered": {}, "status": problem.status,
                        "reason": problem.reason, "fix": problem.fix})
    return records


def describe_class(kind: str, cls: type[Plugin], plugin: str) -> dict:
    """A JSON-able description of one registered class (for ``benchlab list --json``)."""
    record = {"name": cls.name, "kind": kind[:-1], "plugin": plugin, "version": cls.version,
              "summary": cls.summary(), "params": [p.describe() for p in cls.params],
              "metrics": [m.describe() for m in cls.declared_metrics], "code": component(cls)}
    if kind == "attacks":
        record["threat"] = cls.threat
    if kind == "victims":
        record["framework"] = cls.framework
    return record
