"""What a matrix will cost before it runs: ``benchlab plan``.

The cells a run would compute (those not yet recorded under ``--out``) are grouped into the
artifacts they build: poisons to craft, models to train (one per defense × victim × poison ×
seed × recipe when the defense is cached, else one per cell) and evasion attack runs. Each is given
a duration from the rows of earlier runs in ``OUT/results.sqlite`` (the ``seconds_craft``,
``seconds_fit`` and ``seconds_attack`` metrics of cells that built their artifact), matched as
closely as the records allow:

1. the same plugin spec (with parameters), victim and dataset;
2. the same plugin names (other parameters), same dataset;
3. the same spec or names on another dataset, scaled by how much slower the target dataset
   trains the same defense and victim in the records (else by training-set size × input size);
4. for a training: ``erm``'s records of this victim (rules 1-3) times the defense's cost factor, its
   per-epoch time over ``erm``'s on the victims and datasets recorded under both;
5. only then the victim's (or the attack's) records under any defense, this dataset first;
6. a stated default (:data:`DEFAULT_SECONDS`).

``plan --calibrate`` first runs real cells of the matrix (recorded, skipped by the run later) that
give rules 1-3 something to match: on each dataset without records, the cheapest cells per victim
(a clean training, and an evasion attack on it), and one training of each defense and one run of
each evasion attack that no record has.

Trainings are scaled by the ratio of epochs (the matrix recipe's, else the victim's default recipe's,
against the recorded row's), and every estimate by the ratio of the parameters that cost time in
proportion (:data:`WORK_PARAMS`: steps, trees, trials...), defaults filled in.
Each estimate records which rule gave it. The run itself is then simulated on N workers with the
executors' own schedule (:class:`~benchlab.schedule.ArtifactSchedule`: an artifact's first cell,
then its dependants; a cell needing a model another worker is still training waits for it): the
makespan with unlimited workers is the critical path.
"""

from __future__ import annotations

import heapq
import math
import statistics
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field

from .matrix import Cell
from .params import parse_spec, resolve_params
from .schedule import ArtifactSchedule

DEFAULT_SECONDS = {"craft": 30.0, "fit": 20.0, "attack": 5.0, "overhead": 1.0}
# Parameters that cost time in proportion: a record of ``pgd:steps=5`` says ``pgd`` at its default
# 10 steps takes twice as long, ``random-forest:trees=50`` that 300 trees take six times as long.
WORK_PARAMS = ("steps", "trees", "trials", "iterations", "restarts")
SOURCES = ("recorded", "coarser", "other dataset", "default")
REFERENCE_DEFENSE = "erm"  # a defense never recorded on a victim is priced as this one times its cost factor


def _name(spec: str) -> str:
    return parse_spec(spec).name


def _levels(kind: str, dataset: str, attack: str, defense: str, victim: str) -> list[tuple[str, tuple]]:
    """Lookup keys from closest to coarsest, each with the rule it stands for."""
    a, d, v = _name(attack), _name(defense), _name(victim)
    if kind == "craft":
        return [("recorded", (attack, dataset)), ("coarser", (a, dataset)),
                ("other dataset", (attack,)), ("other dataset", (a,))]
    if kind == "fit":  # the defense decides the cost more than the dataset: its other-dataset records
        return [("recorded", (defense, victim, dataset)), ("coarser", (d, v, dataset)),  # come before
                ("other dataset", (defense, victim)), ("other dataset", (d, v)),           # the victim's
                ("coarser", (v, dataset)), ("other dataset", (v,))]                        # other defenses
    if kind == "attack":
        return [("recorded", (attack, defense, victim, dataset)), ("coarser", (attack, v, dataset)),
                ("coarser", (a, v, dataset)), ("other dataset", (attack, v)), ("other dataset", (a, v)),
                ("coarser", (a, dataset)), ("other dataset", (a,))]
    return [("recorded", (dataset,)), ("other dataset", ())]  # overhead: loading, evaluation, bookkeeping


def work_of(registry, kind: str, spec: str) -> float:
    """The product of a spec's proportional-cost parameters, defaults filled in (1 when it has none or
    does not resolve)."""
    try:
        cls = registry.get(kind, _name(spec))
        values = resolve_params(_name(spec), cls.params, parse_spec(spec))
    except Exception:  # an unknown or malformed spec in an old row: not scaled
        return 1.0
    return float(math.prod(v for k, v in values.items() if k in WORK_PARAMS and isinstance(v, (int, float)) and v > 0))


def work_units(registry, kind: str, attack: str, defense: str, victim: str) -> float:
    """How much work one craft, training or attack run of these specs is, relative to other
    parameters of the same plugins (see :data:`WORK_PARAMS`)."""
    if registry is None:
        return 1.0
    if kind == "fit":
        return work_of(registry, "defenses", defense) * work_of(registry, "victims", victim)
    if kind in ("craft", "attack"):
        return work_of(registry, "attacks", attack)
    return 1.0


@dataclass
class Estimate:
    seconds: float
    source: str


class DurationModel:
    """Durations of crafts, trainings, attack runs and per-cell overhead, learned from stored rows."""

    def __init__(self, rows: list[dict], sizes: dict[str, float] | None = None, registry=None):
        self.sizes = sizes or {}  # dataset spec -> training examples × input values (for scaling)
        self.registry = registry  # resolves specs' proportional-cost parameters (None: not scaled)
        self._work: dict[tuple, float] = {}
        self._per_epoch: dict[tuple, float] | None = None  # (defense name, victim name, dataset) -> s/epoch
        self._seen: dict[tuple, list[tuple[float, str, float | None, float]]] = defaultdict(list)
        for row in rows:
            if row["status"] != "ok":
                continue
            m, spent = row["metrics"], 0.0
            epochs = (row["params"].get("recipe") or {}).get("epochs") or m.get("epochs") or None
            facts = []
            if row["threat"] == "poison" and m.get("cache_hit_poison") is False and "seconds_craft" in m:
                facts.append(("craft", m["seconds_craft"], None))
            if m.get("cache_hit_model") is False and "seconds_fit" in m:
                facts.append(("fit", m["seconds_fit"], epochs))
            if row["threat"] == "evasion" and "seconds_attack" in m:
                facts.append(("attack", m["seconds_attack"], None))
            spent = sum(m.get(k, 0.0) for k in ("seconds_craft", "seconds_fit", "seconds_attack"))
            facts.append(("overhead", max(row["duration_s"] - spent, 0.0), None))
            for kind, seconds, per in facts:
                work = self.work(kind, row["attack"], row["defense"], row["victim"])
                for _, key in _levels(kind, row["dataset"], row["attack"], row["defense"], row["victim"]):
                    self._seen[(kind, *key)].append((seconds, row["dataset"], per, work))
        self.ratios = {kind: self._dataset_ratios(kind) for kind in ("fit", "attack")}

    def work(self, kind: str, attack: str, defense: str, victim: str) -> float:
        key = (kind, attack, defense, victim)
        if key not in self._work:
            self._work[key] = work_units(self.registry, kind, attack, defense, victim)
        return self._work[key]

    def _dataset_ratios(self, kind: str) -> dict[tuple[str, str], float]:
        """How much slower each dataset trains (or attacks) than another: the median ratio of the
        per-epoch training times of the same defense and victim (the run times of the same attack on
        the same victim) recorded on both. Cost does not follow data size alone: a small MLP is
        bound by per-batch overhead, a convolution by input size; an attack runs on the test set."""
        per_dataset: dict[tuple, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        for key, seen in self._seen.items():
            if key[0] == kind and len(key) == 3:  # (kind, defense or attack, victim): on any dataset
                for seconds, dataset, epochs, work in seen:
                    per_dataset[key][dataset].append(seconds / (epochs or 1) / work)
        pairs: dict[tuple[str, str], list[float]] = defaultdict(list)
        for by_dataset in per_dataset.values():
            medians = {d: statistics.median(v) for d, v in by_dataset.items()}
            for source, low in medians.items():
                for target, high in medians.items():
                    if source != target and low > 0:
                        pairs[(source, target)].append(high / low)
        return {pair: statistics.median(values) for pair, values in pairs.items()}

    def scale(self, source: str, target: str, kind: str = "fit") -> float | None:
        """The factor from a duration on ``source`` to one on ``target``: measured for this kind of
        work (:meth:`_dataset_ratios`), else measured for training, else by training examples × input
        values, else None (not comparable)."""
        for ratios in (self.ratios.get(kind, {}), self.ratios["fit"]):
            if (source, target) in ratios:
                return ratios[(source, target)]
        if source in self.sizes and target in self.sizes:
            return self.sizes[target] / self.sizes[source]
        return None

    def epochs(self, cell: Cell) -> int | None:
        """The epochs a cell trains for: its recipe's, else its victim's default recipe's."""
        if "epochs" in dict(cell.recipe):
            return dict(cell.recipe)["epochs"]
        try:
            return self.registry.get("victims", _name(cell.victim)).recipe.epochs
        except Exception:  # no registry, or a victim that does not resolve: not scaled
            return None

    def estimate(self, kind: str, cell: Cell) -> Estimate:
        levels = _levels(kind, cell.dataset, cell.attack, cell.defense, cell.victim)
        if kind == "fit":  # the defense's own records; else erm's for this victim times the defense's
            found = self._from_levels(kind, cell, levels[:4])  # cost factor; else the victim's records
            if found is None and _name(cell.defense) != REFERENCE_DEFENSE:
                factor = self.defense_factor(_name(cell.defense))
                erm = _levels(kind, cell.dataset, cell.attack, REFERENCE_DEFENSE, cell.victim)[:4]
                base = self._from_levels(kind, cell, erm) if factor is not None else None
                found = Estimate(base.seconds * factor, "coarser") if base is not None else None
            found = found or self._from_levels(kind, cell, levels[4:])
        else:
            found = self._from_levels(kind, cell, levels)
        return found or Estimate(DEFAULT_SECONDS[kind], "default")

    def _from_levels(self, kind: str, cell: Cell, levels: list[tuple[str, tuple]]) -> Estimate | None:
        """The median of the first level with records, each scaled to this cell's work, epochs and dataset."""
        epochs = self.epochs(cell) if kind == "fit" else None
        work = self.work(kind, cell.attack, cell.defense, cell.victim)
        for source, key in levels:
            values = []
            for seconds, dataset, recorded_epochs, recorded_work in self._seen.get((kind, *key), ()):
                seconds *= work / recorded_work
                if kind == "fit" and epochs and recorded_epochs:
                    seconds *= epochs / recorded_epochs
                if dataset != cell.dataset:
                    factor = self.scale(dataset, cell.dataset, kind)
                    if factor is None:
                        continue
                    seconds *= factor
                values.append(seconds)
            if values:
                return Estimate(statistics.median(values), source)
        return None

    def defense_factor(self, defense: str) -> float | None:
        """How many times :data:`REFERENCE_DEFENSE`'s per-epoch training time a defense takes: the
        median ratio over the (victim, dataset) pairs recorded under both (None: no such pair)."""
        if self._per_epoch is None:  # once: every training estimate without records of its own asks
            out: dict[tuple, list[float]] = defaultdict(list)
            for key, seen in self._seen.items():
                if key[0] == "fit" and len(key) == 4:  # (kind, defense name, victim name, dataset)
                    for seconds, _, epochs, work in seen:
                        out[key[1:]].append(seconds / (epochs or 1) / work)
            self._per_epoch = {key: statistics.median(values) for key, values in out.items()}
        ratios = [time / self._per_epoch[(REFERENCE_DEFENSE, *pair)] for (name, *pair), time in self._per_epoch.items()
                  if name == defense and self._per_epoch.get((REFERENCE_DEFENSE, *pair), 0) > 0]
        return statistics.median(ratios) if ratios else None


@dataclass
class CellCost:
    cell: Cell
    parts: dict[str, Estimate] = field(default_factory=dict)  # the work this cell does itself

    @property
    def seconds(self) -> float:
        return sum(e.seconds for e in self.parts.values())


def artifact_keys(cell: Cell, cached_defense: bool, clean_attack: bool) -> tuple[tuple | None, tuple]:
    """The poison (None when the attack leaves the data clean or is an evasion) and the model a cell needs."""
    poison = ("poison", cell.dataset, cell.attack, cell.seed) if cell.threat == "poison" and not clean_attack else None
    source = cell.attack if poison else "clean"
    model = ("model", cell.dataset, cell.defense, cell.victim, cell.seed, cell.recipe, source)
    if not cached_defense:
        model = (*model, cell.cell_id)  # refitted by every cell
    return poison, model


@dataclass
class Simulation:
    makespan: float
    costs: dict[str, CellCost]
    finish: dict[str, float]
    critical: list[Cell]  # the chain that ends last: an artifact cell, then its dependant


def simulate(cells: list[Cell], model: DurationModel, keys: dict[str, tuple], workers: int) -> Simulation:
    """The run on ``workers`` workers, scheduled as the parallel executors do."""
    schedule = ArtifactSchedule(cells)
    queue = deque(schedule.ready)
    ready_at: dict[tuple, float] = {}  # artifact -> when it is saved
    costs: dict[str, CellCost] = {}
    finish: dict[str, float] = {}
    started_after: dict[str, str] = {}  # a released cell -> the cell that released it
    free = [0.0] * workers
    heapq.heapify(free)
    events: list[tuple[float, int, Cell]] = []
    order = 0
    now = 0.0
    while queue or events:
        while queue and free:
            cell = queue.popleft()
            start = max(heapq.heappop(free), now)
            poison, trained = keys[cell.cell_id]
            cost = CellCost(cell, {"overhead": model.estimate("overhead", cell)})
            t = start
            for kind, key in (("craft", poison), ("fit", trained)):
                if key is None:
                    continue
                if key in ready_at:
                    t = max(t, ready_at[key])  # built, or being built by another worker: wait, then load
                else:
                    cost.parts[kind] = model.estimate(kind, cell)
                    t += cost.parts[kind].seconds
                    ready_at[key] = t
            if cell.threat == "evasion":
                cost.parts["attack"] = model.estimate("attack", cell)
            end = t + cost.parts["overhead"].seconds + cost.parts.get("attack", Estimate(0, "")).seconds
            costs[cell.cell_id] = cost
            order += 1
            heapq.heappush(events, (end, order, cell))
        now, _, cell = heapq.heappop(events)
        finish[cell.cell_id] = now
        heapq.heappush(free, now)
        released = schedule.finished(cell)
        for follower in released:
            started_after[follower.cell_id] = cell.cell_id
        queue.extend(released)
    by_id = {c.cell_id: c for c in cells}
    last = max(finish, key=finish.get) if finish else None
    chain = []
    while last is not None:
        chain.insert(0, by_id[last])
        last = started_after.get(last)
    return Simulation(max(finish.values(), default=0.0), costs, finish, chain)


@dataclass
class Plan:
    cells: list[Cell]  # every cell of the matrix
    todo: list[Cell]  # the runnable cells not yet recorded
    done: set[str]
    keys: dict[str, tuple]
    model: DurationModel
    sequential: Simulation

    def wall(self, workers: int) -> float:
        return simulate(self.todo, self.model, self.keys, workers).makespan

    def critical_path(self) -> Simulation:
        return simulate(self.todo, self.model, self.keys, max(len(self.todo), 1))

    def blocks(self) -> list[dict]:
        """Per block: cells, artifacts to build and estimated CPU time, with the estimates' sources."""
        out: dict[str, dict] = {}
        for cell in self.cells:
            entry = out.setdefault(cell.block, {"block": cell.block, "cells": 0, "done": 0, "n/a": 0, "todo": 0,
                                                "crafts": 0, "trainings": 0, "attack runs": 0, "seconds": 0.0,
                                                "sources": Counter()})
            entry["cells"] += 1
            if cell.reason is not None:
                entry["n/a"] += 1
            elif cell.cell_id in self.done:
                entry["done"] += 1
            else:
                entry["todo"] += 1
                cost = self.sequential.costs[cell.cell_id]
                entry["seconds"] += cost.seconds
                entry["crafts"] += "craft" in cost.parts
                entry["trainings"] += "fit" in cost.parts
                entry["attack runs"] += "attack" in cost.parts
                entry["sources"].update(e.source for k, e in cost.parts.items() if k != "overhead")
        return list(out.values())


def make_plan(cells: list[Cell], done: set[str], rows: list[dict], registry, sizes: dict[str, float]) -> Plan:
    todo = [c for c in cells if c.reason is None and c.cell_id not in done]
    keys = {}
    defenses, attacks = {}, {}
    for cell in todo:
        if cell.defense not in defenses:
            defenses[cell.defense] = registry.get("defenses", _name(cell.defense)).checkpointable
        if cell.attack not in attacks:
            attacks[cell.attack] = getattr(registry.get("attacks", _name(cell.attack)), "leaves_data_clean", False)
        keys[cell.cell_id] = artifact_keys(cell, defenses[cell.defense], attacks[cell.attack])
    model = DurationModel(rows, sizes, registry)
    return Plan(cells, todo, done, keys, model, simulate(todo, model, keys, 1))


def dataset_sizes(specs, registry, data_root=None) -> dict[str, float]:
    """Training examples × input values of each dataset that loads (the others are not scaled)."""
    sizes = {}
    for spec in specs:
        try:
            splits = registry.create("datasets", spec).load(data_root, False)
        except Exception:  # missing or unreadable here: estimates from other datasets are not used for it
            continue
        sizes[spec] = float(len(splits.train) * math.prod(splits.train.x.shape[1:]))
    return sizes


def duration(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


def calibration_cells(cells: list[Cell], rows: list[dict]) -> list[Cell]:
    """What to run before estimating. Per dataset with no recorded row and per victim: the matrix's
    first clean-training cell (``clean``, else the first poison) and its first evasion cell of an
    attack other than ``none``, both preferring ``erm``. Per defense name trained nowhere in the
    records: one cell training it, on a recorded dataset where possible (its time there scales to
    the others), as a clean training; and per evasion attack name run nowhere, one cell on ``erm``.
    Without these a defense such as adversarial training, many times the cost of ``erm``, would be
    estimated from ``erm``."""
    ok = [r for r in rows if r["status"] == "ok"]
    recorded = {r["dataset"] for r in ok}
    trained = {_name(r["defense"]) for r in ok if r["metrics"].get("cache_hit_model") is False}
    attacked = {_name(r["attack"]) for r in ok if r["threat"] == "evasion" and "seconds_attack" in r["metrics"]}
    runnable = [c for c in cells if c.reason is None]
    chosen: dict[tuple, Cell] = {}
    ranked = sorted((c for c in runnable if c.dataset not in recorded),  # a clean training; a real attack
                    key=lambda c: (_name(c.defense) != "erm",
                                   _name(c.attack) != "clean" if c.threat == "poison" else _name(c.attack) == "none"))
    for cell in ranked:
        chosen.setdefault((cell.dataset, cell.victim, cell.threat), cell)
    cheapest_first = sorted(runnable, key=lambda c: (
        c.dataset not in recorded, _name(c.attack) not in ("clean", "none"), _name(c.defense) != "erm"))
    for cell in cheapest_first:
        if _name(cell.defense) not in trained:
            chosen.setdefault(("defense", _name(cell.defense)), cell)
        if cell.threat == "evasion" and _name(cell.attack) not in attacked and _name(cell.defense) == "erm":
            chosen.setdefault(("attack", _name(cell.attack)), cell)
    return list(dict.fromkeys(chosen.values()))
