"""Cost of adversarial training against plain ERM, on the same model, data and batches.

One training epoch (every batch: the defense's objective, backward, optimizer step) is timed for
``erm`` and for the adversarial-training defenses, interleaved round after round, and the ratio of
medians is reported. Theory: a ``pgd-at`` step with K inner steps does K input-gradient passes plus
the training pass, about K + 1 ERM steps (an input-gradient pass skips the weight gradients and the
optimizer step, a little cheaper than a training step; per-batch overheads weigh more on tiny
models); ``fast-at`` is the K = 1 case, about 2 (Wong, Rice & Kolter, arXiv:2001.03994). ``trades``
adds a no-gradient reference pass and a second training forward pass: about K + 2.
"""

import pytest
import torch
from conftest import median_times

from benchlab.context import Context
from benchlab.plugins import get_registry
from benchlab.train import cross_entropy, make_optimizer

ROUNDS = 5
BATCH = 128
DATA = {"mlp": "digits", "lenet5": "fashion-mnist:per_class=100"}


@pytest.fixture(scope="module")
def registry():
    return get_registry()


def epoch_runner(registry, victim_spec: str, defense_spec: str | None):
    """A function training one epoch from the same initial weights, with ``defense_spec``'s objective."""
    try:
        splits = registry.create("datasets", DATA[victim_spec]).load()
    except FileNotFoundError:
        splits = registry.create("datasets", "digits").load()
    victim = registry.create("victims", victim_spec)
    ctx = Context(seed=0, device=torch.device("cpu"), info=splits.info, victim=victim)
    torch.manual_seed(0)
    model = victim.build(splits.info.input_shape, splits.info.num_classes)
    objective = cross_entropy
    if defense_spec is not None:
        objective = registry.create("defenses", defense_spec).objective(model, victim, ctx)
    optimizer = make_optimizer(model.parameters(), ctx.recipe(victim))
    batches = list(zip(splits.train.x.split(BATCH), splits.train.y.split(BATCH)))

    def one_epoch():
        model.train()
        for x, y in batches:
            loss, _ = objective(model, x, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    return one_epoch, len(splits.train)


@pytest.mark.parametrize("victim", ["mlp", "lenet5"])
def test_adversarial_training_epoch_vs_erm_epoch(benchmark, one_thread, registry, victim):
    eps = 0.1
    contenders = {"erm": None, "fast-at": f"fast-at:eps={eps}", "pgd-at:steps=3": f"pgd-at:eps={eps},steps=3",
                  "pgd-at:steps=10": f"pgd-at:eps={eps},steps=10", "trades:steps=10": f"trades:eps={eps},steps=10"}
    runners = {}
    for name, spec in contenders.items():
        runners[name], images = epoch_runner(registry, victim, spec)
    seconds = median_times(runners, ROUNDS)
    benchmark.pedantic(runners["fast-at"], rounds=3, iterations=1)
    ratios = {name: seconds[name] / seconds["erm"] for name in contenders}
    theory = {"fast-at": 2, "pgd-at:steps=3": 4, "pgd-at:steps=10": 11, "trades:steps=10": 12}  # K + 1; K + 2
    benchmark.extra_info.update(images=images, **{f"{k}_s": v for k, v in seconds.items()},
                                **{f"{k}_ratio": v for k, v in ratios.items()})
    print(f"\n{victim}, {images} images, one epoch: erm {seconds['erm']:.3f}s (median of {ROUNDS}); "
          + ", ".join(f"{k} {ratios[k]:.2f}x (theory ~{theory[k]})" for k in theory))
