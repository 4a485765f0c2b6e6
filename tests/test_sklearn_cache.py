"""scikit-learn victims are cached like torch ones, through skops, and foreign types are refused."""

import pytest
import skops.io
import torch

from benchlab import cell as cell_module
from benchlab.cell import Settings, run_cell
from benchlab.matrix import Matrix
from benchlab.sklearn_io import UntrustedArtifact, estimator_from_tensor, estimator_to_tensor


class NotAnEstimator:
    """Stands for whatever a tampered cache file could name instead of a scikit-learn type."""

    def predict(self, x):
        return x


def _cell(registry, victim, defense="erm", attack="random-noise:eps=0.1"):
    block = {"name": "t", "datasets": ["digits:per_class=40"], "attacks": [attack], "defenses": [defense],
             "victims": [victim], "seeds": [0], "recipe": {}, "budgets": {}}
    (cell,) = Matrix("t", [block]).expand(registry)
    return cell


@pytest.mark.parametrize("victim", ["random-forest:trees=20", "svm-rbf"])
def test_a_scikit_learn_victim_is_trained_once_and_restored_identically(tmp_path, registry, victim):
    settings = Settings(out=str(tmp_path))
    cell_module._fitted_memo.clear()
    first = run_cell(_cell(registry, victim), settings)
    cell_module._fitted_memo.clear()  # a new worker: only the disk cache is left
    second = run_cell(_cell(registry, victim), settings)
    assert first["status"] == second["status"] == "ok"
    assert first["metrics"]["cache_hit_model"] is False and second["metrics"]["cache_hit_model"] is True
    numbers = ("test_acc", "train_acc", "robust_acc")
    assert {k: second["metrics"][k] for k in numbers} == {k: first["metrics"][k] for k in numbers}
    assert len(list((tmp_path / "cache" / "model").glob("*.safetensors"))) == 1


def test_median_filter_keeps_its_input_transform_when_restored(tmp_path, registry):
    settings = Settings(out=str(tmp_path))
    cell_module._fitted_memo.clear()
    first = run_cell(_cell(registry, "random-forest:trees=20", "median-filter"), settings)
    cell_module._fitted_memo.clear()
    second = run_cell(_cell(registry, "random-forest:trees=20", "median-filter"), settings)
    assert second["metrics"]["cache_hit_model"] is True
    assert second["metrics"]["test_acc"] == first["metrics"]["test_acc"]


def test_serialised_types_outside_scikit_learn_are_refused():
    tampered = torch.frombuffer(bytearray(skops.io.dumps(NotAnEstimator())), dtype=torch.uint8)
    with pytest.raises(UntrustedArtifact, match="NotAnEstimator"):
        estimator_from_tensor(tampered)


def test_a_tampered_cached_estimator_is_refused_and_the_model_refit(tmp_path, registry, caplog):
    from benchlab.cache import ArtifactCache

    settings = Settings(out=str(tmp_path))
    cell = _cell(registry, "random-forest:trees=20")
    cell_module._fitted_memo.clear()
    first = run_cell(cell, settings)
    (path,) = (tmp_path / "cache" / "model").glob("*.safetensors")
    cache = ArtifactCache(tmp_path / "cache")
    _, info = cache.load("model", path.stem)
    # A valid file with a matching SHA-256 sidecar: only the type check can catch it.
    cache.save("model", path.stem, {"estimator": estimator_to_tensor(NotAnEstimator())}, info)
    cell_module._fitted_memo.clear()
    with caplog.at_level("WARNING"):
        second = run_cell(cell, settings)
    assert second["status"] == "ok" and second["metrics"]["cache_hit_model"] is False
    assert "refused" in caplog.text and "NotAnEstimator" in caplog.text
    assert second["metrics"]["test_acc"] == first["metrics"]["test_acc"]


def test_the_defense_contract_round_trips_a_scikit_learn_victim_when_the_defense_declares_one():
    from benchlab.defense_base import TrainingDefense
    from benchlab.testing import _check_defense, tiny_splits

    class TorchOnlyCheckpoint(TrainingDefense):
        """Declares scikit-learn support but caches only torch state dicts (a third-party slip)."""

        name = "torch-only-checkpoint"

        def checkpoint(self, fitted):
            return fitted.classifier.module.state_dict(), {}

    with pytest.raises(AttributeError, match="module"):  # the torch victim passes; the forest's cache fails
        _check_defense(TorchOnlyCheckpoint(), tiny_splits())
