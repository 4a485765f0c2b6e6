"""Running one cell: the two threat models of DESIGN §3, with the artifacts they share.

*Poison cell*: craft the poison (cached per attack × dataset × seed), fit the defense on it (cached
per poison × defense × victim × seed), measure on the clean test set.
*Evasion cell*: fit the defense on clean data (the same cache entry as the ``clean`` poison cell),
perturb the test set, measure clean and robust accuracy.
*Poison cell on a generative victim*: as a poison cell, measured by reconstruction PSNR and pattern
reproduction on the clean test set (:mod:`benchlab.generative_metrics`), with a figure of the model.

``run_cell`` never raises: a failure becomes a ``failed`` row with its traceback.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from .cache import ArtifactCache, cache_key
from .code_identity import component, core
from .context import Context, resolve_device, seed_everything
from .data import DataSplits
from .generative_figure import figure_name, save_generative_figure
from .generative_metrics import generative_metrics
from .heap import keep_freed_memory
from .interfaces import EvasionAttack, EvasionResult, Fitted, PoisonedSet, perturbation_norms
from .manifest import manifest
from .matrix import Cell
from .numerics import Numerics
from .params import SpecError
from .plugins import get_registry
from .progress import Phase, Progress
from .reliability import evasion_flags
from .sklearn_io import UntrustedArtifact
from .train import History
from .transfer import crafting_model

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Settings:
    """Run-wide settings every worker needs (picklable: it crosses process and Ray boundaries)."""

    out: str
    device: str = "auto"
    data_root: str | None = None
    download: bool = False
    # Where the cells' phase events go (benchlab.progress), set by the runner; None: nowhere.
    progress: Callable[[Phase], None] | None = None
    matrix: str = "adhoc"
    cache_url: str | None = None  # a second-level artifact cache (fsspec URL), behind OUT/cache
    # On Ray (benchlab.depot): the cache lives in node-local scratch, the depot actor behind it.
    scratch: str | None = None
    depot: object | None = None


@functools.lru_cache(maxsize=4)
def load_dataset(spec: str, data_root: str | None, download: bool, device: str) -> tuple[DataSplits, str]:
    """Datasets are loaded (and fingerprinted) once per process and kept on the device."""
    source = get_registry().create("datasets", spec)
    splits = source.load(Path(data_root) if data_root else None, download)
    return splits.to(device), splits.fingerprint()


def run_cell(cell: Cell, settings: Settings) -> dict:
    """Execute ``cell`` and return its database row (status ok, failed or n/a).

    The process first keeps freed memory in its heap (:mod:`benchlab.heap`; the manifest says so).
    """
    started = time.time()
    row = _identity_row(cell, settings, started)
    device, heap_kept = None, False
    numerics = Numerics.from_key(cell.numerics)
    with numerics.applied():  # the same numerics on every executor (benchlab.numerics)
        try:
            heap_kept = keep_freed_memory()
            device = resolve_device(settings.device)
            row["manifest"] = manifest(device)
            if cell.reason is not None:
                row.update(status="n/a", metrics={}, reason=cell.reason)
            else:
                row.update(status="ok", metrics=_execute(cell, settings, device), reason=None)
        except Exception as error:  # one failing cell must never kill the matrix
            row.update(status="failed", metrics={},
                       reason=f"{type(error).__name__}: {error}\n{traceback.format_exc()}")
            row.setdefault("manifest", manifest(device))
            row["manifest"]["failure_kind"] = failure_kind(error, device_resolved=device is not None)
    row["manifest"]["heap_kept"] = heap_kept
    row["manifest"]["numerics"] = numerics.as_dict()
    row["finished_at"] = time.time()
    row["duration_s"] = row["finished_at"] - started
    return row


def _identity_row(cell: Cell, settings: Settings, started: float) -> dict:
    return {"cell_id": cell.cell_id, "matrix": settings.matrix, "block": cell.block, "dataset": cell.dataset,
            "threat": cell.threat, "attack": cell.attack, "defense": cell.defense, "victim": cell.victim,
            "seed": cell.seed, "params": {"recipe": dict(cell.recipe), "specs": cell.specs, "code": cell.code},
            "code_version": cell.code_version, "started_at": started}


def lost_row(cell: Cell, settings: Settings, reason: str, started: float) -> dict:
    """The ``failed`` row the driver records for a cell whose worker died (every retry spent):
    failure kind ``lost``."""
    row = _identity_row(cell, settings, started)
    row.update(status="failed", metrics={}, reason=reason, manifest=manifest(None))
    row["manifest"].update(failure_kind="lost", numerics=Numerics.from_key(cell.numerics).as_dict())
    row["finished_at"] = time.time()
    row["duration_s"] = row["finished_at"] - started
    return row


# Why a cell failed, recorded in its manifest: the runner retries "environment" and "request"
# failures automatically (fixing the machine or the matrix is the fix), and "lost" ones (the worker
# process or Ray node died under the cell: often memory, fixed by fewer workers), never "code" ones.
FAILURE_KINDS = ("environment", "request", "code", "lost")
RETRIED_FAILURES = ("environment", "request", "lost")


def failure_kind(error: Exception, device_resolved: bool = True) -> str:
    from .datasets.base import DatasetMissing, MalformedDataset

    if not device_resolved or isinstance(error, DatasetMissing | MalformedDataset | OSError | MemoryError
                                         | torch.cuda.OutOfMemoryError):
        return "environment"
    if isinstance(error, SpecError):
        return "request"
    return "code"


def _execute(cell: Cell, settings: Settings, device: torch.device) -> dict:
    registry = get_registry()
    progress = Progress(cell.cell_id, cell.label(), settings.progress)
    progress.phase("loading data")
    splits, fingerprint = load_dataset(cell.dataset, settings.data_root, settings.download, str(device))
    attack = registry.create("attacks", cell.attack)
    defense = registry.create("defenses", cell.defense)
    victim = registry.create("victims", cell.victim)
    remote = None
    if settings.depot is not None:  # on Ray: this node's scratch, the depot behind it
        from .depot import DepotClient

        remote = DepotClient(settings.depot)
    cache = ArtifactCache(Path(settings.scratch or settings.out) / "cache", salt=cache_key(cell.numerics),
                          remote_url=settings.cache_url, remote=remote)
    ctx = Context(seed=cell.seed, device=device, info=splits.info, cache=cache, progress=progress,
                  recipe_overrides=dict(cell.recipe), monitor=splits.test, victim=victim,
                  data_root=Path(settings.data_root) if settings.data_root else None, download=settings.download,
                  numerics=cell.numerics, code=cell.code, registry=registry)

    def reference(defense_spec: str, victim_spec: str | None = None):
        """The victim (or ``victim_spec``) trained by ``defense_spec`` on clean data: transfer sources."""
        source_victim = registry.create("victims", victim_spec) if victim_spec else victim
        return _fit_cached(registry.create("defenses", defense_spec), source_victim, None, "clean",
                           splits, ctx, fingerprint)[0].classifier

    ctx.reference = reference
    metrics: dict = {}
    if cell.threat == "poison":
        tick = time.perf_counter()
        poison, poison_key, hit = _craft_cached(attack, splits, ctx, fingerprint)
        metrics.update(seconds_craft=time.perf_counter() - tick, cache_hit_poison=hit,
                       poison_fraction=poison.fraction)
        fitted, fit_seconds, hit = _fit_cached(defense, victim, poison, poison_key, splits, ctx, fingerprint)
    else:
        fitted, fit_seconds, hit = _fit_cached(defense, victim, None, "clean", splits, ctx, fingerprint)
    metrics.update(seconds_fit=fit_seconds, cache_hit_model=hit)
    if victim.generative:  # only poison cells reach here (matrix expansion makes the rest n/a)
        metrics.update(fitted.metrics)
        metrics.update(_generative_metrics(cell, fitted, poison, splits, ctx))
        return metrics
    metrics.update(_accuracy_metrics(fitted, splits))
    metrics.update(fitted.metrics)
    if cell.threat == "poison":
        metrics.update(attack.metrics(poison, fitted, splits, ctx))
    else:
        tick = time.perf_counter()
        metrics.update(_evasion_metrics(attack, fitted, splits, ctx))
        metrics["seconds_attack"] = time.perf_counter() - tick
    return metrics


def _craft_cached(attack, splits: DataSplits, ctx: Context, fingerprint: str):
    if attack.leaves_data_clean:  # share the clean-trained models with the evasion cells
        return PoisonedSet(splits.train, torch.zeros(len(splits.train), dtype=torch.bool)), "clean", True
    key = cache_key("poison", attack.identity(), fingerprint, ctx.seed, component(type(attack)), core(), ctx.numerics)

    def craft():
        seed_everything(ctx.seed)
        with ctx.progress.within("crafting"):
            poison = attack.craft(splits.train, ctx.crafting())  # the key covers no test set, victim or recipe
        return poison.tensors(), {}

    poison, _, hit = ctx.cache.get_or_create("poison", key, craft,
                                             decode=lambda tensors, info: PoisonedSet.from_tensors(tensors))
    return poison.to(ctx.device), key, hit


def _fit_cached(defense, victim, poison: PoisonedSet | None, poison_key: str, splits: DataSplits,
                ctx: Context, fingerprint: str) -> tuple[Fitted, float, bool]:
    """Fit (or restore) the defense; every defense with ``restore`` is cached (torch and scikit-learn)."""
    train = poison.data if poison is not None else splits.train  # poison_key "clean": clean data
    key = cache_key("model", defense.identity(), victim.identity(), poison_key, fingerprint, ctx.seed,
                    sorted(ctx.recipe_overrides.items()), component(type(defense)), component(type(victim)), core(),
                    ctx.numerics)
    memo = _fitted_memo.pop(key, None)
    if memo is not None:
        _fitted_memo[key] = memo  # most recently used last
        return memo, 0.0, True
    tick = time.perf_counter()
    cacheable = defense.checkpointable
    # Locked: two process/Ray workers that need the same model train it once; the second restores it.
    with ctx.cache.lock("model", key) if cacheable else contextlib.nullcontext():
        found = ctx.cache.load("model", key) if cacheable else None
        seed_everything(ctx.seed)
        fitted = None
        if found is not None:
            try:
                fitted = defense.restore(victim, found[0], found[1], ctx)
            except Exception as error:  # verified bytes that do not load (refused types, wrong state): refit
                refused = "refused" if isinstance(error, UntrustedArtifact) else "does not load"
                ctx.cache.quarantine("model", key, f"{refused}: {type(error).__name__}: {error}")
        hit = fitted is not None
        if fitted is None:
            ctx.progress.phase("training")
            fitted = defense.fit(victim, train, ctx)
            if cacheable:
                ctx.cache.save("model", key, *defense.checkpoint(fitted))
    # Keep the last two trained models in memory: consecutive evasion cells share one, and a
    # transferred attack also needs its source's.
    _fitted_memo[key] = fitted
    while len(_fitted_memo) > 2:
        _fitted_memo.pop(next(iter(_fitted_memo)))
    return fitted, time.perf_counter() - tick, hit


_fitted_memo: dict[str, Fitted] = {}


def _accuracy_metrics(fitted: Fitted, splits: DataSplits) -> dict:
    history = fitted.history or History()
    test_acc = fitted.classifier.accuracy(splits.test.x, splits.test.y)
    train_acc = history.train_acc[-1] if history.train_acc else float("nan")
    return {"test_acc": test_acc, "test_acc_peak": max([test_acc, *history.test_acc]),
            "train_acc": train_acc, "generalization_gap": train_acc - test_acc,
            "epochs": len(history.test_acc)}


def _generative_metrics(cell: Cell, fitted: Fitted, poison: PoisonedSet, splits: DataSplits, ctx: Context) -> dict:
    """PSNR and pattern reproduction on the clean test set, and the cell's figure beside the results."""
    metrics, images = generative_metrics(fitted.generative, splits, poison.pattern(), ctx.seed)
    folder = ctx.artifact_dir("figures", "generative")
    if folder is not None:
        name = figure_name(cell.dataset, cell.attack, cell.defense, cell.victim, cell.seed)
        save_generative_figure(images, f"{cell.label()}\nrecon PSNR {metrics['recon_psnr']:.2f} dB", folder / name)
    return metrics


def _evasion_metrics(attack: EvasionAttack, fitted: Fitted, splits: DataSplits, ctx: Context) -> dict:
    x, y = splits.test.x, splits.test.y
    crafter = crafting_model(attack, fitted.classifier, ctx)  # the cell's model unless transferred
    seed_everything(ctx.seed)
    with ctx.progress.within("attacking"):
        result = attack.perturb(crafter, x, y, ctx)
    if not isinstance(result, EvasionResult):
        result = EvasionResult(result)
    x_adv = result.x_adv.detach()
    if x_adv.shape != x.shape or not torch.isfinite(x_adv).all() or x_adv.min() < -1e-6 or x_adv.max() > 1 + 1e-6:
        raise ValueError(f"attack {attack.spec} returned inputs of shape {tuple(x_adv.shape)} "
                         f"outside [0, 1] (or not finite) or of the wrong shape")
    clean_pred = fitted.classifier.predict(x)
    adv_pred = fitted.classifier.predict(x_adv)
    correct = clean_pred == y
    metrics = {"robust_acc": (adv_pred == y).float().mean().item(),
               "attack_success_rate": (correct & (adv_pred != y)).float().sum().item() / max(correct.sum().item(), 1)}
    if attack.minimal_norm:
        norms = perturbation_norms(x_adv - x, attack.norm)
        ratios = norms / perturbation_norms(x, attack.norm).clamp_min(1e-12)
        flipped = adv_pred != clean_pred
        metrics["perturbation_norm"] = norms.mean().item()
        metrics["rho_adv"] = ratios.mean().item()
        # Over the inputs the attack actually flipped: rho_adv alone is deflated by failures (r = 0).
        metrics["rho_adv_flipped"] = ratios[flipped].mean().item() if flipped.any() else float("nan")
    if result.target is not None:
        metrics["targeted_success_rate"] = (adv_pred == result.target.to(adv_pred.device)).float().mean().item()
    metrics.update(result.metrics)
    metrics.update(evasion_flags(attack, fitted.classifier, x, y, x_adv, clean_acc=correct.float().mean().item(),
                                 robust_acc=metrics["robust_acc"], transferred=crafter is not fitted.classifier))
    return metrics
