"""Contract tests a plugin author runs against their own plugin.

    from benchlab.testing import check_plugin

    def test_my_attack_contract():
        check_plugin("attacks", "my-attack:eps=0.1")

Each check runs the plugin on a small slice of the embedded digits data and asserts the interface
promises: shapes, the [0, 1] range, budgets, labels, determinism under a seed, checkpoint round
trips. Plugins may set a class attribute ``test_spec`` (e.g. fewer iterations) used by default.
"""

from __future__ import annotations

import torch
from torch import nn

from .context import Context
from .data import DataSplits, TensorData
from .generative import GenerativeHistory, GenerativeVictim, TrainedGenerative
from .interfaces import (
    NAME_PATTERN,
    DatasetSource,
    Defense,
    EvasionAttack,
    EvasionResult,
    PoisonAttack,
    PoisonedSet,
    Victim,
    perturbation_norms,
)
from .metrics import Metric
from .params import Param
from .plugins import Registry, get_registry
from .train import Recipe

__all__ = ["check_plugin", "check_class", "tiny_splits", "TinyVictim", "TinyForest", "TinyAutoencoder",
           "make_context"]


class TinyVictim(Victim):
    """A one-hidden-layer MLP used by the contract checks (not registered)."""

    name = "tiny"
    recipe = Recipe(optimizer="adam", lr=1e-2, epochs=15, batch_size=64)

    def build(self, input_shape, num_classes):
        c, h, w = input_shape
        return nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, 32), nn.ReLU(), nn.Linear(32, num_classes))

    def split(self, model):
        return model[:3], model[3:]


class TinyForest(Victim):
    """A ten-tree scikit-learn forest: the checks' sklearn victim for defenses that declare one."""

    name = "tiny-forest"
    framework = "sklearn"

    def build(self, input_shape, num_classes):
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(n_estimators=10, random_state=0)


class TinyAutoencoder(GenerativeVictim):
    """A linear autoencoder: the checks' generative victim for defenses that declare ``trains_generative``."""

    name = "tiny-autoencoder"
    recipe = Recipe(optimizer="adam", lr=1e-2, epochs=5, batch_size=64)

    def build(self, input_shape, num_classes=0):
        c, h, w = input_shape
        return nn.ModuleDict({"enc": nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, 8)),
                              "dec": nn.Sequential(nn.Linear(8, c * h * w), nn.Sigmoid(), nn.Unflatten(1, (c, h, w)))})

    def fit(self, model, images, recipe, ctx):
        optimizer = torch.optim.Adam(model.parameters(), lr=recipe.lr)
        history, generator = GenerativeHistory(), torch.Generator().manual_seed(ctx.seed)
        for _ in range(recipe.epochs):
            order, total = torch.randperm(len(images), generator=generator), 0.0
            for start in range(0, len(images), recipe.batch_size):
                x = images[order[start : start + recipe.batch_size]]
                loss = nn.functional.mse_loss(self.reconstruct(model, x), x)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += loss.item() * len(x)
            history.add({"mse": total / len(images)})
        return history

    def reconstruct(self, model, x):
        return model["dec"](model["enc"](x))

    def sample(self, model, n, generator):
        return model["dec"](torch.randn(n, 8, generator=generator).to(next(model.parameters()).device))


def tiny_splits(per_class: int = 12, registry=None) -> DataSplits:
    """A small, real, balanced slice of the digits data (always available offline)."""
    splits = (registry or get_registry()).create("datasets", f"digits:per_class={per_class}").load()
    return DataSplits(splits.train, splits.test.subset(slice(0, 10 * per_class)), splits.info)


def make_context(splits: DataSplits, seed: int = 0, **changes) -> Context:
    changes.setdefault("registry", get_registry())
    return Context(seed=seed, device=torch.device("cpu"), info=splits.info, monitor=splits.test, **changes)


def check_class(cls) -> None:
    """Static promises: a valid name, a one-line summary, well-formed parameter declarations."""
    assert NAME_PATTERN.match(cls.name or ""), f"{cls.__name__}.name={cls.name!r} must be lowercase-hyphenated"
    assert cls.summary(), f"{cls.__name__} needs a docstring whose first line summarises it"
    names = [p.name for p in cls.params]
    assert len(names) == len(set(names)), f"{cls.name}: duplicate parameter names {names}"
    for param in cls.params:
        assert isinstance(param, Param), f"{cls.name}: params must be benchlab.Param instances"
        if param.default is not None and not param.required:
            assert param.parse(cls.name, param.default) == param.default, f"{cls.name}: bad default {param}"
    metrics = [m.name for m in cls.declared_metrics]
    assert all(isinstance(m, Metric) and m.help for m in cls.declared_metrics), \
        f"{cls.name}: declared_metrics must be benchlab.Metric instances with a one-line help"
    assert len(metrics) == len(set(metrics)), f"{cls.name}: duplicate declared metrics {metrics}"
    assert sum(m.headline for m in cls.declared_metrics) <= 1, f"{cls.name}: more than one headline metric"


def check_plugin(kind: str, spec=None, name: str | None = None, registry=None) -> None:
    """Run every applicable contract check on a plugin: a registered spec or name, or a class.

    ``spec`` without parameters uses the class's own ``test_spec`` (one it declares itself: a subclass
    does not silently check its parent's configuration), else its defaults. A class need not be
    registered: it is checked in a copy of ``registry`` (default: the process-wide one) that holds it.
    """
    registry = registry or get_registry()
    if isinstance(spec, type):
        registry = _with_class(registry, kind, spec)
        spec = spec.name
    cls = registry.get(kind, (spec or name).split(":")[0])
    check_class(cls)
    spec = spec if spec and ":" in spec else (cls.__dict__.get("test_spec") or cls.name)
    splits = tiny_splits(registry=registry)
    if kind in ("attacks", "defenses"):  # budgets fill eps/pixels exactly as a matrix would
        from .matrix import with_budget

        plugin = with_budget(registry, spec, splits.info.budgets, kind)
    else:
        plugin = registry.create(kind, spec)
    checks = {PoisonAttack: _check_poison, EvasionAttack: _check_evasion, Defense: _check_defense,
              Victim: _check_victim, DatasetSource: _check_dataset}
    for base, check in checks.items():
        if isinstance(plugin, base):
            check(plugin, splits)
            return
    raise AssertionError(f"{spec}: not an instance of any benchlab interface")


def _with_class(registry: Registry, kind: str, cls: type) -> Registry:
    """A copy of ``registry`` in which ``cls`` is registered under its name (replacing any other)."""
    copy = Registry(entries={k: dict(v) for k, v in registry.entries.items()}, matrices=registry.matrices,
                    loaded=set(registry.loaded), problems=list(registry.problems))
    copy.entries[kind].pop(getattr(cls, "name", None), None)
    copy.add(kind, cls, plugin=getattr(cls, "__module__", "check_plugin"))
    return copy


def _check_generative_victim(victim, splits: DataSplits) -> None:
    """Trains briefly; reconstructions and samples keep the images' shape and [0, 1] range, samples are
    seeded by the generator alone, and a state-dict round trip (the model cache) reproduces the model."""
    ctx = make_context(splits, victim=victim, registry=victim.registry or get_registry())
    torch.manual_seed(0)
    model = victim.build(splits.info.input_shape, splits.info.num_classes).to(ctx.device)
    history = victim.fit(model, splits.train.x, victim.recipe.override(epochs=2), ctx)
    assert isinstance(history, GenerativeHistory), f"{victim.spec}: fit must return a GenerativeHistory"
    trained = TrainedGenerative(victim, model)
    x = splits.test.x[:8]
    recon = trained.reconstruct(x)
    assert recon.shape == x.shape, f"{victim.spec}: reconstruction shape {tuple(recon.shape)} != {tuple(x.shape)}"
    samples = trained.sample(5, torch.Generator().manual_seed(3))
    assert samples.shape == (5, *x.shape[1:]), f"{victim.spec}: sample shape {tuple(samples.shape)}"
    for name, images in (("reconstructions", recon), ("samples", samples)):
        assert torch.isfinite(images).all() and 0 <= images.min() and images.max() <= 1, \
            f"{victim.spec}: {name} leave [0, 1]"
    assert torch.equal(trained.sample(5, torch.Generator().manual_seed(3)), samples), \
        f"{victim.spec}: samples are not determined by the generator"
    restored = victim.build(splits.info.input_shape, splits.info.num_classes)
    restored.load_state_dict({k: v.clone() for k, v in model.state_dict().items()})
    assert torch.equal(TrainedGenerative(victim, restored).reconstruct(x), recon), \
        f"{victim.spec}: a state-dict round trip changes the reconstructions"


def _check_victim(victim: Victim, splits: DataSplits) -> None:
    if victim.generative:
        _check_generative_victim(victim, splits)
        return
    model = victim.build(splits.info.input_shape, splits.info.num_classes)
    if victim.framework == "sklearn":
        model.fit(splits.train.x.flatten(1).numpy(), splits.train.y.numpy())
        assert model.predict(splits.test.x.flatten(1).numpy()).shape == (len(splits.test),)
        return
    model.eval()
    with torch.no_grad():
        out = model(splits.test.x[:4])
        assert out.shape == (4, splits.info.num_classes), f"{victim.spec}: output shape {tuple(out.shape)}"
        if victim.has_split:
            rep, head = victim.split(model)
            assert torch.allclose(head(rep(splits.test.x[:4])), out, atol=1e-5), f"{victim.spec}: split != model"


def _check_defense(defense: Defense, splits: DataSplits) -> None:
    for victim in (TinyVictim(), TinyForest()):  # each framework the defense declares
        if not defense.incompatibility(splits.info, victim):
            _check_defense_on(defense, victim, splits)
    if defense.trains_generative:
        _check_defense_on_generative(defense, TinyAutoencoder(), splits)


def _check_defense_on_generative(defense: Defense, victim: GenerativeVictim, splits: DataSplits) -> None:
    """A defense that trains generative victims returns the trained model, which beats an untrained one
    and (when checkpointable) round-trips through its checkpoint."""
    from .generative_metrics import psnr

    ctx = make_context(splits, victim=victim, registry=defense.registry or get_registry())
    fitted = defense.fit(victim, splits.train, ctx)
    assert fitted.classifier is None and isinstance(fitted.generative, TrainedGenerative), \
        f"{defense.spec} on a generative victim: Fitted(None, history, generative=TrainedGenerative(...))"
    x = splits.test.x
    recon = fitted.generative.reconstruct(x)
    untrained = TrainedGenerative(victim, victim.build(splits.info.input_shape)).reconstruct(x)
    assert psnr(recon, x).mean() > psnr(untrained, x).mean(), f"{defense.spec}: generative training did not help"
    if defense.checkpointable:
        tensors, info = defense.checkpoint(fitted)
        restored = defense.restore(victim, tensors, info, ctx)
        assert torch.equal(restored.generative.reconstruct(x), recon), f"{defense.spec} on a generative victim: " \
                                                                        "restore differs"


def _check_defense_on(defense: Defense, victim: Victim, splits: DataSplits) -> None:
    ctx = make_context(splits, registry=defense.registry or get_registry())
    fitted = defense.fit(victim, splits.train, ctx)
    pred = fitted.classifier.predict(splits.test.x)
    assert pred.shape == (len(splits.test),) and pred.dtype == torch.long
    chance = 1.0 / splits.info.num_classes
    assert fitted.classifier.accuracy(splits.test.x, splits.test.y) > chance, \
        f"{defense.spec} on {victim.framework}: no better than chance"
    if defense.checkpointable:  # the runner caches through these
        tensors, info = defense.checkpoint(fitted)
        assert all(isinstance(t, torch.Tensor) for t in tensors.values()), \
            f"{defense.spec} on {victim.framework}: checkpoint must return tensors (safetensors, never pickle)"
        restored = defense.restore(victim, tensors, info, ctx)
        assert torch.equal(restored.classifier.predict(splits.test.x), pred), \
            f"{defense.spec} on {victim.framework}: restore differs"


def _check_poison(attack: PoisonAttack, splits: DataSplits) -> None:
    # What the runner hands craft: no test set, victim or recipe.
    ctx = make_context(splits, registry=attack.registry or get_registry()).crafting()
    first = attack.craft(splits.train, ctx)
    assert isinstance(first, PoisonedSet)
    x, y = first.data.x, first.data.y
    assert x.shape == splits.train.x.shape, f"{attack.spec}: poisoned images change shape"
    assert 0 <= x.min() and x.max() <= 1, f"{attack.spec}: poisoned images leave [0, 1]"
    assert y.dtype == torch.long and 0 <= y.min() and y.max() < splits.info.num_classes
    assert first.poisoned.shape == (len(splits.train),) and first.poisoned.dtype == torch.bool
    changed = (x != splits.train.x).flatten(1).any(1) | (y != splits.train.y)
    assert not (changed & ~first.poisoned).any(), f"{attack.spec}: changed examples outside the poisoned mask"
    eps = attack.values.get("eps")
    if eps is not None and attack.values.get("norm", "linf") == "linf":
        assert (x - splits.train.x).abs().max() <= eps + 1e-5, f"{attack.spec}: exceeds eps={eps}"
    second = attack.craft(splits.train, make_context(splits, registry=attack.registry or get_registry()).crafting())
    assert torch.equal(second.data.x, x) and torch.equal(second.data.y, y), f"{attack.spec}: not deterministic"


def _check_evasion(attack: EvasionAttack, splits: DataSplits) -> None:
    victim = TinyVictim()
    from .defense_base import TrainingDefense

    ctx = make_context(splits, victim=victim, registry=attack.registry or get_registry())
    fitted = TrainingDefense().fit(victim, splits.train, ctx)
    x, y = splits.test.x, splits.test.y
    torch.manual_seed(0)
    result = attack.perturb(fitted.classifier, x, y, ctx)
    x_adv = result.x_adv if isinstance(result, EvasionResult) else result
    assert x_adv.shape == x.shape, f"{attack.spec}: output shape {tuple(x_adv.shape)}"
    assert 0 <= x_adv.min() and x_adv.max() <= 1, f"{attack.spec}: adversarial inputs leave [0, 1]"
    eps = attack.values.get("eps")
    if eps is not None and not attack.minimal_norm:
        tolerance = 1e-4 * max(1.0, eps)
        norms = perturbation_norms(x_adv - x, attack.norm)
        assert norms.max() <= eps + tolerance, f"{attack.spec}: {attack.norm} norm {norms.max():.4g} > eps {eps}"
    torch.manual_seed(0)
    again = attack.perturb(fitted.classifier, x, y, ctx)
    again = again.x_adv if isinstance(again, EvasionResult) else again
    assert torch.allclose(again, x_adv, atol=1e-6), f"{attack.spec}: not deterministic under a fixed seed"


def _check_dataset(source: DatasetSource, splits: DataSplits) -> None:
    try:
        loaded = source.load()
    except FileNotFoundError as missing:
        assert "--data-root" in str(missing) or "install" in str(missing), "missing-data errors must say how to get it"
        return
    for part in (loaded.train, loaded.test):
        assert isinstance(part, TensorData) and part.x.dtype == torch.float32
        assert part.x.shape[1:] == loaded.info.input_shape
        assert 0 <= part.x.min() and part.x.max() <= 1
