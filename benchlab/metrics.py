"""Declared metrics: what a component adds to a cell's row, and how the leaderboard should read it.

"Better" is always from the defender's side, because leaderboards rank defenses: a backdoor's
attack success rate is declared ``higher_is_better=False``, so its block's worst case is the highest.

Which metric a table shows (:class:`TableMetrics`): ``--metric`` on the command line, else the
block's ``metric`` key, else the headline declared by the first of the block's attacks that declares
one, else the threat model's default (clean test accuracy for poisoning, robust accuracy for evasion).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

from .params import SpecError, closest, parse_spec


@dataclass(frozen=True)
class Metric:
    """One metric a component reports: its row key, direction, meaning, and whether it is the
    headline its blocks are ranked by. ``fraction``: a share in [0, 1], shown in percent."""

    name: str
    higher_is_better: bool
    help: str
    headline: bool = False
    fraction: bool = True

    def describe(self) -> dict:
        return asdict(self)


# What a poison cell on a generative victim reports (benchlab.generative_metrics).
GENERATIVE = (
    Metric("recon_psnr", True, "generative: mean PSNR (dB) of the reconstructions of the clean test images",
           headline=True, fraction=False),
    Metric("pattern_reproduction", False, "generative: share of samples and reconstructions that carry the "
                                          "poison's pixel pattern"),
    Metric("pattern_in_samples", False, "generative: share of samples that carry some class's pixel pattern"),
    Metric("pattern_in_reconstructions", False, "generative: share of reconstructions of clean test images "
                                                "that carry their class's pixel pattern"),
    Metric("pattern_in_test", False, "generative: share of the clean test images themselves that carry their "
                                     "class's pattern (the criterion's chance level)"),
)


# The metrics the cell itself computes (benchlab.cell).
STANDARD = (
    Metric("test_acc", True, "final accuracy on the clean test set"),
    Metric("test_acc_peak", True, "best per-epoch clean test accuracy during training"),
    Metric("train_acc", True, "accuracy on the training set actually used (poisoned or not)"),
    Metric("generalization_gap", False, "train_acc - test_acc"),
    Metric("robust_acc", True, "evasion: accuracy on the attacked test inputs"),
    Metric("attack_success_rate", False, "evasion: share of correctly classified inputs the attack flips"),
    Metric("targeted_success_rate", False, "targeted attacks: share of test inputs classified as the target"),
    Metric("perturbation_norm", True, "minimal-norm attacks: mean norm of the perturbation over all test inputs",
           fraction=False),
    Metric("rho_adv", True, "minimal-norm attacks: mean ||r|| / ||x|| over all test inputs", fraction=False),
    Metric("rho_adv_flipped", True, "minimal-norm attacks: mean ||r|| / ||x|| over the inputs the attack flipped",
           fraction=False),
    Metric("poison_fraction", False, "poison: share of training examples changed"),
    Metric("seconds_craft", False, "seconds spent crafting the poison (0 when cached)", fraction=False),
    Metric("seconds_fit", False, "seconds spent training the victim (0 when cached)", fraction=False),
    Metric("seconds_attack", False, "seconds spent perturbing the test set", fraction=False),
    *GENERATIVE,
)
DEFAULT = {"poison": "test_acc", "evasion": "robust_acc"}


def declarations(classes: Iterable[type]) -> dict[str, Metric]:
    """Every metric by name: the standard ones, then each class's ``declared_metrics`` (first wins)."""
    out = {m.name: m for m in STANDARD}
    for cls in classes:
        for metric in getattr(cls, "declared_metrics", ()):
            out.setdefault(metric.name, metric)
    return out


def headline(cls: type) -> str | None:
    """The metric a class declares as the headline of its blocks, if any."""
    return next((m.name for m in getattr(cls, "declared_metrics", ()) if m.headline), None)


@dataclass
class TableMetrics:
    """Which metric each leaderboard table ranks by, and how to read it.

    ``declared``: every known metric; ``forced``: ``--metric``; ``by_block``: the blocks' ``metric``
    keys; ``headlines``: attack spec -> the headline metric its class declares.
    """

    declared: dict[str, Metric] = field(default_factory=lambda: {m.name: m for m in STANDARD})
    forced: str | None = None
    by_block: dict[str, str] = field(default_factory=dict)
    headlines: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_registry(cls, registry, *, forced: str | None = None, blocks: Iterable[dict] = (),
                      attacks: Iterable[str] = ()) -> TableMetrics:
        """Declarations of every registered class; headlines of ``attacks`` (specs). Unknown metric
        names (``forced`` or a block's) fail here, naming the declared ones."""
        kinds = ("attacks", "defenses", "victims", "datasets")
        declared = declarations(registry.get(kind, name) for kind in kinds for name in registry.names(kind))
        by_block = {block["name"]: block["metric"] for block in blocks if block.get("metric")}
        for where, name in [("--metric", forced), *((f"block {b!r}", m) for b, m in by_block.items())]:
            if name is not None and name not in declared:
                raise SpecError(f"{where}: unknown metric {name!r}; {closest(name, declared)}")
        headlines = {}
        for spec in set(attacks):
            try:
                found = headline(registry.get("attacks", parse_spec(spec).name))
            except SpecError:  # a recorded attack no longer installed: no declaration to follow
                continue
            if found:
                headlines[spec] = found
        return cls(declared, forced, by_block, headlines)

    def choose(self, threat: str, attacks: Iterable[str], block: str | None = None) -> str:
        if self.forced:
            return self.forced
        if block is not None and block in self.by_block:
            return self.by_block[block]
        return next((self.headlines[a] for a in attacks if a in self.headlines), DEFAULT.get(threat, "test_acc"))

    def get(self, name: str) -> Metric:
        """The declaration of ``name`` (an undeclared one reads as a higher-is-better fraction)."""
        return self.declared.get(name) or Metric(name, True, "")
