"""``benchlab new-plugin``: a ready plugin package whose tests pass as generated.

The package holds one working component per requested kind (the examples of ``docs/plugins.md``,
renamed after the plugin), a ``pyproject.toml`` with the ``benchlab`` entry point, and a test that
runs the contract checks on each component through the ``benchlab_registry`` fixture (a registry of
just this plugin).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from .interfaces import NAME_PATTERN
from .params import SpecError

KINDS = ("evasion", "poison", "defense", "victim")

# kind -> (module, class, registry kind, hook, source with {name} for the plugin name)
COMPONENTS = {
    "evasion": ("evasion", "SignStep", "attacks", "register_attacks", '''
        """{title}'s evasion attack."""

        import torch

        import benchlab


        class SignStep(benchlab.EvasionAttack):
            """One FGSM step (Goodfellow et al., arXiv:1412.6572, eq. 3): eps times the sign of the loss gradient."""

            name = "{name}-fgsm"
            params = (benchlab.eps_param(),)
            test_spec = "{name}-fgsm:eps=0.1"

            def perturb(self, model, x, y, ctx):
                eps = benchlab.resolve_budget(self.p.eps, "linf", ctx)
                out = torch.empty_like(x)
                for part in benchlab.chunks(len(x)):
                    xs = x[part].clone().requires_grad_(True)
                    loss = torch.nn.functional.cross_entropy(model.logits(xs), y[part])
                    (grad,) = torch.autograd.grad(loss, xs)
                    out[part] = (xs + eps * grad.sign()).clamp(0, 1).detach()
                return out

            def incompatibility(self, info, victim):
                return benchlab.missing_budget(self.p.eps, "linf", info) or super().incompatibility(info, victim)
    '''),
    "poison": ("poison", "FlipToZero", "attacks", "register_attacks", '''
        """{title}'s poison."""

        import benchlab


        class FlipToZero(benchlab.PoisonAttack):
            """Sets the label of a seeded fraction of the training set to class 0 (a targeted label flip)."""

            name = "{name}-flip-to-zero"
            params = (benchlab.fraction_param(0.2),)

            def craft(self, train, ctx):
                mask = benchlab.poison_mask(len(train), self.p.fraction, ctx.generator(1), train.device)
                y = train.y.clone()
                y[mask] = 0
                return benchlab.PoisonedSet(benchlab.TensorData(train.x, y), mask & (train.y != 0))

            def metrics(self, poison, fitted, splits, ctx):
                predicted = fitted.classifier.predict(splits.test.x).to(splits.test.y.device)
                return {{"predicted_zero": (predicted == 0).float().mean().item()}}
    '''),
    "defense": ("defense", "LabelSmoothing", "defenses", "register_defenses", '''
        """{title}'s training defense."""

        import torch

        import benchlab


        class LabelSmoothing(benchlab.TrainingDefense):
            """Label smoothing (Szegedy et al., arXiv:1512.00567, Sec. 7): cross-entropy against softened targets."""

            name = "{name}-label-smoothing"
            frameworks = ("torch",)
            params = (benchlab.Param("smoothing", float, 0.1, "probability mass spread over all classes",
                                     low=0.0, high=1.0),)

            def objective(self, model, victim, ctx):
                def loss(model, x, y):
                    logits = model(x)
                    return torch.nn.functional.cross_entropy(logits, y, label_smoothing=self.p.smoothing), logits

                return loss
    '''),
    "victim": ("victim", "TinyMLP", "victims", "register_victims", '''
        """{title}'s victim."""

        from torch import nn

        import benchlab


        class TinyMLP(benchlab.SplitVictim):
            """One hidden ReLU layer."""

            name = "{name}-mlp"
            params = (benchlab.Param("width", int, 32, "hidden units", low=1),)
            recipe = benchlab.ADAM_RECIPE

            def build(self, input_shape, num_classes):
                c, h, w = input_shape
                features = nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, self.p.width), nn.ReLU())
                return benchlab.SplitNet(features, nn.Linear(self.p.width, num_classes))
    '''),
}


def package_name(name: str) -> str:
    return "benchlab_" + name.replace("-", "_")


def write_plugin(name: str, kinds=KINDS, dest: str | Path = ".") -> Path:
    """Write the package ``benchlab-NAME`` under ``dest`` and return its directory."""
    if not NAME_PATTERN.match(name):
        raise SpecError(f"plugin name {name!r} must be lowercase letters, digits and hyphens (e.g. my-attacks)")
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown or not kinds:
        raise SpecError(f"unknown kinds {unknown or '(none given)'}; valid kinds: {', '.join(KINDS)}")
    kinds = [k for k in KINDS if k in kinds]
    root = Path(dest) / f"benchlab-{name}"
    if root.exists():
        raise SpecError(f"{root} already exists; choose another name or --dest")
    package = package_name(name)
    title = f"benchlab-{name}"
    (root / package).mkdir(parents=True)
    (root / "tests").mkdir()
    for kind in kinds:
        module, _, _, _, source = COMPONENTS[kind]
        (root / package / f"{module}.py").write_text(_dedent(source).format(name=name, title=title))
    (root / package / "__init__.py").write_text(_init(title, kinds))
    (root / "tests" / "test_contracts.py").write_text(_test(name, kinds))
    (root / "pyproject.toml").write_text(_dedent(f'''
        [build-system]
        requires = ["setuptools>=68"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "{title}"
        version = "0.1.0"
        description = "A benchlab plugin"
        requires-python = ">=3.11"
        dependencies = ["benchlab"]

        [project.entry-points.benchlab]
        {name} = "{package}"

        [tool.setuptools]
        packages = ["{package}"]

        [tool.pytest.ini_options]
        benchlab_plugin = "{package}"
    '''))
    (root / "README.md").write_text(f"# {title}\n\nA benchlab plugin. `pip install -e .` registers it; "
                                    f"`pytest` runs the contract checks; `benchlab list attacks '{name}-*'` "
                                    f"lists it. See benchlab's docs/plugins.md.\n")
    return root


def _dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def _init(title: str, kinds: list[str]) -> str:
    lines = [f'"""{title}: a benchlab plugin."""', "", "import benchlab", ""]
    lines += [f"from .{COMPONENTS[k][0]} import {COMPONENTS[k][1]}" for k in kinds]
    hooks: dict[str, list[str]] = {}
    for kind in kinds:
        _, cls, _, hook, _ = COMPONENTS[kind]
        hooks.setdefault(hook, []).append(cls)
    for hook, classes in hooks.items():
        lines += ["", "", "@benchlab.hookimpl", f"def {hook}(register):"]
        lines += [f"    register({cls})" for cls in classes]
    return "\n".join(lines) + "\n"


def _test(name: str, kinds: list[str]) -> str:
    cases = ", ".join(f'("{COMPONENTS[k][2]}", "{_registered_name(name, k)}")' for k in kinds)
    return _dedent(f'''
        """The benchlab contract checks on every component of this plugin."""

        import pytest
        from benchlab.testing import check_plugin


        @pytest.mark.parametrize("kind, name", [{cases}])
        def test_contract(benchlab_registry, kind, name):
            check_plugin(kind, name, registry=benchlab_registry)
    ''')


def _registered_name(name: str, kind: str) -> str:
    return {"evasion": f"{name}-fgsm", "poison": f"{name}-flip-to-zero", "defense": f"{name}-label-smoothing",
            "victim": f"{name}-mlp"}[kind]
