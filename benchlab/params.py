"""Declared plugin parameters and the ``name:key=value,...`` spec syntax.

A plugin declares its parameters as a tuple of :class:`Param`; a spec string such as
``pgd:norm=l2,eps=1.5`` or ``timm:resnet18`` is parsed by :func:`parse_spec` and validated by
:func:`resolve_params`, which fills defaults and fails with a message naming the valid choices.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from typing import Any


class SpecError(ValueError):
    """A plugin name or parameter that does not resolve; the message names the valid choices."""


def closest(word: str, choices, n: int = 3) -> str:
    """A ``did you mean`` fragment naming the nearest valid choices (or all when few)."""
    choices = sorted(choices)
    near = difflib.get_close_matches(word, choices, n=n, cutoff=0.5)
    if near:
        return f"did you mean {', '.join(repr(c) for c in near)}?"
    shown = ", ".join(choices[:12]) + (" ..." if len(choices) > 12 else "")
    return f"valid choices: {shown}" if choices else "nothing is registered"


@dataclass(frozen=True)
class Param:
    """One declared parameter: type, default, and optional choices or numeric range.

    ``kind`` (``"attacks"``, ``"defenses"``, ``"victims"`` or ``"datasets"``) makes the value a nested
    spec of a registered component of that kind (``source=erm``, ``surrogate=graynet``): the value
    stays its spec text, and the registry that creates the owner checks that it resolves.
    """

    name: str
    type: type = float
    default: Any = None
    help: str = ""
    choices: tuple | None = None
    low: float | None = None
    high: float | None = None
    required: bool = False
    keyword_only: bool = False  # never filled by a positional value (``name:a,b``)
    kind: str | None = None

    def parse(self, owner: str, raw: Any) -> Any:
        value = self._convert(owner, raw)
        if self.choices is not None and value not in self.choices:
            raise SpecError(
                f"{owner}: {self.name}={raw!r} is not allowed; choose one of "
                f"{', '.join(map(str, self.choices))}"
            )
        if self.type is float and value is not None and not math.isfinite(value):
            raise SpecError(f"{owner}: {self.name}={raw!r} is not a finite number")
        if self.type in (int, float):
            if self.low is not None and value < self.low:
                raise SpecError(f"{owner}: {self.name}={value} is below the minimum {self.low}")
            if self.high is not None and value > self.high:
                raise SpecError(f"{owner}: {self.name}={value} is above the maximum {self.high}")
        return value

    def _convert(self, owner: str, raw: Any) -> Any:
        if raw is None:
            return None
        if self.type is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise SpecError(f"{owner}: {self.name}={raw!r} is not a boolean (use true/false)")
        try:
            if self.type is int and isinstance(raw, str) and not raw.strip().lstrip("-").isdigit():
                raise ValueError
            return self.type(raw)
        except (TypeError, ValueError):
            raise SpecError(
                f"{owner}: {self.name}={raw!r} is not a valid {self.type.__name__}"
            ) from None

    def describe(self) -> dict:
        out = {"name": self.name, "type": self.type.__name__, "default": self.default, "help": self.help}
        if self.choices is not None:
            out["choices"] = list(self.choices)
        if self.low is not None or self.high is not None:
            out["range"] = [self.low, self.high]
        if self.kind is not None:
            out["kind"] = self.kind
        return out


@dataclass(frozen=True)
class Spec:
    """A parsed plugin reference: the registered name, positional values and keyword values."""

    name: str
    positional: tuple[str, ...] = ()
    options: tuple[tuple[str, str], ...] = field(default=())


def parse_spec(text: str) -> Spec:
    """Split ``name[:value|key=value[,key=value...]]`` into its parts (no validation yet)."""
    text = str(text).strip()
    if not text:
        raise SpecError("empty plugin name")
    name, _, rest = text.partition(":")
    positional, options = [], []
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, eq, value = item.partition("=")
        if eq:
            options.append((key.strip(), value.strip()))
        elif options:
            raise SpecError(f"{text!r}: positional value {item!r} must come before key=value pairs")
        else:
            positional.append(item)
    return Spec(name.strip().lower(), tuple(positional), tuple(options))


def resolve_params(owner: str, declared: tuple[Param, ...], spec: Spec, overrides: dict | None = None) -> dict:
    """Validate a spec against declared parameters and return every value (defaults filled)."""
    by_name = {p.name: p for p in declared}
    given: dict[str, Any] = {}
    positional = [p for p in declared if not p.keyword_only]
    if len(spec.positional) > len(positional):
        raise SpecError(
            f"{owner}: too many positional values {list(spec.positional)}; "
            f"positional parameters are {', '.join(p.name for p in positional) or '(none)'}"
        )
    for param, raw in zip(positional, spec.positional):
        given[param.name] = raw
    for key, raw in [*spec.options, *(overrides or {}).items()]:
        key = key.replace("-", "_")
        if key not in by_name:
            raise SpecError(f"{owner}: unknown parameter {key!r}; {closest(key, by_name)}")
        given[key] = raw
    values = {}
    for param in declared:
        if param.name in given:
            values[param.name] = param.parse(owner, given[param.name])
        elif param.required:
            raise SpecError(f"{owner}: parameter {param.name!r} is required ({param.help or param.type.__name__})")
        else:
            values[param.name] = param.default
    return values


def format_spec(name: str, declared: tuple[Param, ...], values: dict) -> str:
    """Canonical text for a resolved plugin: non-default values, in declaration order."""
    parts = [f"{p.name}={_fmt(values[p.name])}" for p in declared if values.get(p.name) != p.default]
    return f"{name}:{','.join(parts)}" if parts else name


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
