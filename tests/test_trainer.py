"""The shared trainer: learning, history, determinism, recipes."""

import pytest
import torch
from torch import nn

from benchlab.data import TensorData
from benchlab.train import OPTIMIZERS, Recipe, evaluate, fit, make_optimizer


def _model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))


@pytest.mark.parametrize("optimizer, lr", [("sgd", 0.05), ("adam", 0.01), ("rmsprop", 0.003)])
def test_every_optimizer_learns_digits(digits, optimizer, lr):
    model = _model()
    history = fit(model, digits.train, Recipe(optimizer=optimizer, lr=lr, epochs=8), seed=0, monitor=digits.test)
    assert len(history.test_acc) == len(history.train_acc) == 8
    assert history.final_test_acc > 0.85, history
    assert history.peak_test_acc >= history.final_test_acc
    assert history.train_acc[-1] == pytest.approx(evaluate(model, digits.train))


def test_same_seed_same_weights_other_seed_differs(digits):
    weights = []
    for seed in (0, 0, 1):
        model = _model()
        fit(model, digits.train, Recipe(epochs=2), seed=seed)
        weights.append(torch.cat([p.flatten() for p in model.parameters()]))
    assert torch.equal(weights[0], weights[1])
    assert not torch.equal(weights[0], weights[2])


def test_objective_and_transforms_are_used(digits):
    calls = {"objective": 0, "batch": 0}

    def objective(model, x, y):
        calls["objective"] += 1
        logits = model(x)
        return nn.functional.cross_entropy(logits, y), logits

    def batch_transform(x, y, generator):
        calls["batch"] += 1
        return x, y

    recipe = Recipe(epochs=1, batch_size=100)
    fit(_model(), digits.train, recipe, seed=0, objective=objective, batch_transform=batch_transform)
    steps = -(-len(digits.train) // 100)
    assert calls == {"objective": steps, "batch": steps}


def test_recipe_override_and_bad_values():
    recipe = Recipe().override(epochs=3, lr=None)
    assert recipe.epochs == 3 and recipe.lr == Recipe().lr
    with pytest.raises(ValueError, match="unknown recipe fields \\['epoch'\\]"):
        Recipe().override(epoch=3)
    with pytest.raises(ValueError, match="valid: sgd, adam, rmsprop"):
        make_optimizer(_model().parameters(), Recipe(optimizer="adamw"))
    assert OPTIMIZERS == ("sgd", "adam", "rmsprop")


def test_tensor_data_validates_shapes():
    with pytest.raises(ValueError, match="must be \\(N, C, H, W\\)"):
        TensorData(torch.zeros(4, 8, 8), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="4 images but 3 labels"):
        TensorData(torch.zeros(4, 1, 8, 8), torch.zeros(3, dtype=torch.long))


def test_bf16_precision_runs_the_forward_in_bfloat16_keeps_fp32_weights_and_learns(digits):
    dtypes = []

    def objective(model, x, y):
        logits = model(x)
        dtypes.append(logits.dtype)
        return nn.functional.cross_entropy(logits, y), logits

    fp32, bf16 = _model(), _model()
    fit(fp32, digits.train, Recipe(epochs=8), seed=0)
    history = fit(bf16, digits.train, Recipe(epochs=8, precision="bf16"), seed=0, monitor=digits.test,
                  objective=objective)
    assert set(dtypes) == {torch.bfloat16}
    assert all(p.dtype == torch.float32 for p in bf16.parameters())
    assert history.final_test_acc > 0.85
    assert not torch.equal(fp32[1].weight, bf16[1].weight)  # it is not silently ignored
    with pytest.raises(ValueError, match="unknown precision 'fp8'; valid: fp32, bf16"):
        fit(_model(), digits.train, Recipe(epochs=1, precision="fp8"), seed=0)
