"""Cost of crafting ``error-min`` relative to one ERM training of the same victim on the same data.

The data: scikit-learn's digits training split (1347 images, 8x8). The victim is the ``mlp``
trained by ``erm`` with its recipe (Adam, 20 epochs, batch 64), and error-min's surrogate is the
same kind of model (``surrogate=mlp``) as well as the default CNN. Crafting runs until the paper's
stop condition (surrogate accuracy on the poisoned set ≥ 99 %), so its cost includes the rounds it
takes; the number of rounds is recorded beside the ratio. Both sides are timed interleaved, round
after round, on one thread; the ratio of medians is the figure, never the absolute seconds.
"""

from __future__ import annotations

import pytest
import torch
from conftest import median_times

from benchlab import Context
from benchlab.plugins import get_registry

ROUNDS = 3


@pytest.mark.parametrize("spec", ["error-min:surrogate=mlp", "error-min:surrogate=mlp,mode=class", "error-min"])
def test_error_min_crafting_vs_one_erm_training(benchmark, one_thread, spec):
    registry = get_registry()
    splits = registry.create("datasets", "digits").load()
    ctx = Context(seed=0, device=torch.device("cpu"), info=splits.info)
    attack, erm, victim = registry.create("attacks", spec), registry.create("defenses", "erm"), \
        registry.create("victims", "mlp")
    rounds = int(attack.craft(splits.train, ctx).extras["rounds"])
    times = median_times({"craft": lambda: attack.craft(splits.train, ctx),
                          "erm": lambda: erm.fit(victim, splits.train, ctx)}, ROUNDS)
    ratio = times["craft"] / times["erm"]
    benchmark.extra_info.update(craft_s=times["craft"], erm_s=times["erm"], ratio=ratio, craft_rounds=rounds)
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    print(f"\n{spec} on digits: crafting {times['craft']:.2f}s ({rounds} rounds), one erm training of the "
          f"mlp {times['erm']:.2f}s, ratio {ratio:.2f}")
