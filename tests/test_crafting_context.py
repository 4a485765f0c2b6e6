"""Poison crafting sees the training split and what its cache key covers, never the test set."""

import types

import torch

import benchlab
from benchlab import cell as cell_module
from benchlab.cell import Settings, run_cell
from benchlab.matrix import Matrix
from benchlab.plugins import build_registry, make_plugin_manager
from benchlab.testing import check_plugin

SEEN: list = []


class SpyPoison(benchlab.PoisonAttack):
    """Records what crafting is handed, then flips nothing."""

    name = "spy-poison"

    def craft(self, train, ctx):
        SEEN.append((train, ctx))
        return benchlab.PoisonedSet(train, torch.zeros(len(train), dtype=torch.bool, device=train.device))


def _registry():
    plugin = types.ModuleType("spy_plugin")
    plugin.register_attacks = benchlab.hookimpl(lambda register: register(SpyPoison))
    return build_registry(make_plugin_manager(extra_plugins=[plugin]))


def test_a_poison_cell_crafts_without_test_set_victim_or_recipe(monkeypatch, tmp_path):
    registry = _registry()
    monkeypatch.setattr(cell_module, "get_registry", lambda: registry)
    block = {"name": "b", "datasets": ["digits:per_class=10,test_per_class=5"], "attacks": ["spy-poison"],
             "defenses": ["erm"], "victims": ["mlp:hidden1=8,hidden2=8"], "seeds": [0],
             "recipe": {"epochs": 1}, "budgets": {}}
    (the_cell,) = Matrix("m", [block]).expand(registry)
    SEEN.clear()
    row = run_cell(the_cell, Settings(out=str(tmp_path)))
    assert row["status"] == "ok", row["reason"]
    ((train, ctx),) = SEEN
    assert isinstance(ctx, benchlab.CraftingContext) and not isinstance(ctx, benchlab.Context)
    for hidden in ("monitor", "victim", "recipe_overrides", "reference", "recipe"):
        assert not hasattr(ctx, hidden), hidden
    assert len(train) == 100  # the training split (10 per class), not the 50 test images
    assert ctx.create("victims", "mlp").name == "mlp"  # nested specs still resolve, through the run's registry


def test_the_contract_checks_craft_with_the_same_narrow_context():
    SEEN.clear()
    check_plugin("attacks", SpyPoison)  # a class: checked without registering it anywhere
    assert SEEN and all(not isinstance(ctx, benchlab.Context) for _, ctx in SEEN)


def test_a_subclass_is_checked_with_its_own_defaults_not_its_parents_test_spec():
    class Parent(benchlab.EvasionAttack):
        """Adds eps to every pixel."""

        name = "parent-shift"
        needs_gradients = False
        params = (benchlab.Param("eps", float, 0.1, low=0.0, high=1.0),)
        test_spec = "parent-shift:eps=0.05"

        def perturb(self, model, x, y, ctx):
            SEEN.append(self.spec)
            return (x + self.p.eps).clamp(0, 1)

    class Child(Parent):
        """Adds the default eps."""

        name = "child-shift"

    SEEN.clear()
    check_plugin("attacks", Child)
    assert set(SEEN) == {"child-shift"}
    SEEN.clear()
    check_plugin("attacks", Parent)
    assert set(SEEN) == {"parent-shift:eps=0.05"}
