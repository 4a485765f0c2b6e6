"""Transfer evaluation (benchlab.transfer): every evasion attack takes source= and source_victim=."""

import pytest
import torch

from benchlab.cell import Settings
from benchlab.context import Context
from benchlab.matrix import load_matrix
from benchlab.params import SpecError
from benchlab.runner import run_matrix
from benchlab.store import ResultsStore
from benchlab.transfer import crafting_model


def test_every_evasion_attack_takes_the_transfer_parameters_and_checks_them(registry):
    evasion = [cls for cls in registry.classes("attacks") if cls.threat == "evasion"]
    assert len(evasion) > 10
    for cls in evasion:
        spec = cls.test_spec or cls.name
        attack = registry.create("attacks", f"{spec}{',' if ':' in spec else ':'}source=erm,source_victim=lenet5")
        assert attack.spec.endswith("source=erm,source_victim=lenet5"), cls.name
    with pytest.raises(SpecError, match="'ermm' does not resolve.*did you mean 'erm'"):
        registry.create("attacks", "pgd:source=ermm")
    with pytest.raises(SpecError, match="'mlpp' does not resolve.*did you mean 'mlp'"):
        registry.create("attacks", "pgd:source=erm,source_victim=mlpp")
    with pytest.raises(SpecError, match="source_victim='mlp' needs source=DEFENSE"):
        registry.create("attacks", "pgd:source_victim=mlp")


def test_unset_transfer_parameters_stay_out_of_cache_keys(registry):
    # Adding the parameters to every attack must not change the identity (and cell ids) of any of them.
    assert registry.create("attacks", "fgsm:eps=0.1").identity()["params"] == {"norm": "linf", "eps": 0.1}
    assert registry.create("attacks", "fgsm:eps=0.1,source=erm").identity()["params"]["source"] == "erm"


def test_a_gradient_attack_applies_to_a_scikit_learn_victim_only_through_a_torch_source(registry, digits):
    forest = registry.create("victims", "random-forest")
    assert "needs gradients" in registry.create("attacks", "pgd").incompatibility(digits.info, forest)
    assert "needs gradients" in registry.create("attacks", "pgd:source=erm").incompatibility(digits.info, forest)
    transferred = registry.create("attacks", "pgd:source=erm,source_victim=mlp")
    assert transferred.incompatibility(digits.info, forest) is None


def test_crafting_model_asks_the_runner_for_the_source_model(registry, digits):
    asked = []
    ctx = Context(seed=0, device=torch.device("cpu"), info=digits.info,
                  reference=lambda spec, victim: asked.append((spec, victim)) or "source model")
    assert crafting_model(registry.create("attacks", "pgd"), "cell model", ctx) == "cell model"
    assert crafting_model(registry.create("attacks", "pgd:source=erm,source_victim=lenet5"), "cell model",
                          ctx) == "source model"
    assert asked == [("erm", "lenet5")]
    ctx.reference = None
    with pytest.raises(RuntimeError, match="ctx.reference"):
        crafting_model(registry.create("attacks", "pgd:source=erm"), "cell model", ctx)


TRANSFER = """
name = "transfer"
[recipe]
epochs = 8
[[block]]
datasets = ["digits:per_class=60"]
attacks = ["random-noise:eps=0.15", "pgd:eps=0.15,source=erm,source_victim=mlp"]
defenses = ["erm"]
victims = ["random-forest:trees=50", "lenet5"]
"""


def test_transferred_pgd_hurts_a_random_forest_more_than_noise_and_trains_its_source_once(tmp_path, registry):
    path = tmp_path / "transfer.toml"
    path.write_text(TRANSFER)
    summary = run_matrix(load_matrix(str(path), registry), Settings(out=str(tmp_path / "run")), show_progress=False)
    assert summary.counts == {"ok": 4}
    rows = {(r["victim"].split(":")[0], r["attack"].split(":")[0]): r["metrics"]
            for r in ResultsStore(tmp_path / "run").rows()}
    forest_noise, forest_pgd = rows["random-forest", "random-noise"], rows["random-forest", "pgd"]
    # Crafted on an MLP the forest never saw, scored on the forest.
    assert forest_pgd["test_acc"] == forest_noise["test_acc"]
    assert forest_pgd["robust_acc"] < forest_noise["robust_acc"] - 0.15
    assert rows["lenet5", "pgd"]["robust_acc"] < rows["lenet5", "random-noise"]["robust_acc"]
    # Models on disk: the forest, the lenet5 victim and the mlp source, which was trained for the
    # first cell that needed it and restored for the second.
    assert len(list((tmp_path / "run" / "cache" / "model").glob("*.safetensors"))) == 3
