"""DeepConfuse at 28x28: more trials give a poison at least as strong (slow: minutes per seed).

One run of 4x the default trials yields the 1x and 2x poisons too: trial t's surrogate seed and
batches do not depend on the total number of trials, so a T-trial run is the first T trials of a
longer one and returns the generator as it is after trial T (``tests/test_deepconfuse.py`` checks
the prefix property).
"""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
from benchlab_deepconfuse.attack import DeepConfuse
from benchlab_deepconfuse.confuse import poisoned, train_generator
from benchlab_deepconfuse.diagnostics import class_share
from benchlab_deepconfuse.generator import build_generator, noise_of

from benchlab import TensorData
from benchlab.plugins import get_registry
from benchlab.testing import make_context

DATASET = "fashion-mnist:per_class=20,test_per_class=50"
EPS = 0.3
# Default trials, batch and rates for this set; trials of 20 steps instead of the rule's 70 keep the
# 4x run (60 trials) to a few minutes.
SPEC = f"deepconfuse:eps={EPS},maxiter=20"
VICTIM = "deepconfuse-cnn"
EPOCHS = 10


# One torch thread: the margins these tests assert were measured that way.
pytestmark = pytest.mark.usefixtures("one_thread")


def load():
    registry = get_registry()
    source = registry.create("datasets", DATASET)
    if not source.installed():
        pytest.skip("Fashion-MNIST is not installed (Debian: dataset-fashion-mnist)")
    return source.load()


def poisons_by_budget(splits, seed: int, factors=(1, 2, 4)) -> dict[int, torch.Tensor]:
    """{factor: poisoned training images} for factor x the default number of trials."""
    attack = get_registry().create("attacks", SPEC)
    assert isinstance(attack, DeepConfuse)
    default = attack.p.trials
    settings = dataclasses.replace(attack.settings(splits.train), trials=default * max(factors))
    torch.manual_seed(seed)
    generator = build_generator(1, EPS)
    states = [copy.deepcopy(generator.state_dict())]  # states[t]: the generator after t trials
    surrogate = get_registry().create("victims", attack.surrogate_spec(splits.info))
    records = train_generator(
        generator, lambda: surrogate.build(splits.info.input_shape, 10), splits.train, 10, settings, seed=seed,
        on_trial=lambda t, _: states.append(copy.deepcopy(generator.state_dict())))
    assert len(records) == default * max(factors)
    out = {}
    for factor in factors:
        generator.load_state_dict(states[default * factor])
        out[factor] = poisoned(splits.train.x, noise_of(generator, splits.train.x)).detach()
    return out


def victim_accuracy(splits, x: torch.Tensor, seed: int) -> float:
    registry = get_registry()
    victim = registry.create("victims", VICTIM)
    ctx = make_context(splits, seed=seed, victim=victim, recipe_overrides={"epochs": EPOCHS})
    fitted = registry.create("defenses", "erm").fit(victim, TensorData(x, splits.train.y), ctx)
    return fitted.classifier.accuracy(splits.test.x, splits.test.y)


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("seed", [0, 1])
def test_more_trials_give_a_poison_at_least_as_strong(seed):
    splits = load()
    poisons = poisons_by_budget(splits, seed)
    uniform = get_registry().create("attacks", f"uniform-noise:eps={EPS}").craft(
        splits.train, make_context(splits, seed=seed)).data.x
    control = victim_accuracy(splits, uniform, seed)
    accuracy = {f: victim_accuracy(splits, x, seed) for f, x in poisons.items()}
    share = {f: class_share(x - splits.train.x, splits.train.y, 10) for f, x in poisons.items()}
    print(f"seed {seed}: uniform {control:.3f}, accuracy {accuracy}, class share {share}")
    # Measured (1 thread, x1 / x2 / x4 trials): seed 0 uniform 0.632, accuracy 0.474 / 0.478 / 0.430, class
    # share 0.72 / 0.70 / 0.62; seed 1 uniform 0.598, accuracy 0.512 / 0.462 / 0.444, share 0.71 / 0.66 / 0.64.
    # The class share eases a little as the poison strengthens: the margin allows that, not a collapse.
    assert accuracy[1] < control - 0.05, (accuracy, control)
    for factor in (2, 4):
        assert accuracy[factor] <= accuracy[1] + 0.04, (factor, accuracy)
        assert share[factor] >= share[1] - 0.15, (factor, share)
