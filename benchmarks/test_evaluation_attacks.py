"""The batched ``deepfool`` against the per-image ``ta-deepfool``, and the ``autoattack`` wrapper's overhead.

* DeepFool: the same trained victim (erm, 10 epochs on digits) and the same test images for both;
  the outputs are checked equal (float tolerance) before timing. Figure: speed-up ta-deepfool /
  deepfool, and images per second of each.
* AutoAttack: ``autoattack`` through benchlab (adapter, frozen parameters, chunks, clipping) against
  ``torchattacks.AutoAttack`` called directly on the victim's ``nn.Module``, same seed and settings
  (10 iterations, 500 Square queries, so a round takes seconds); outputs checked equal. Figure:
  overhead ratio wrapper / direct.
"""

from __future__ import annotations

import pytest
import torch
from benchlab_torchattacks.autoattack import standard_autoattack
from conftest import median_times

from benchlab.context import Context
from benchlab.plugins import get_registry

pytestmark = pytest.mark.usefixtures("one_thread")


def trained(victim: str):
    registry = get_registry()
    digits = registry.create("datasets", "digits").load()
    plugin = registry.create("victims", victim)
    ctx = Context(seed=0, device=torch.device("cpu"), info=digits.info, victim=plugin,
                  recipe_overrides={"epochs": 10})
    return registry.create("defenses", "erm").fit(plugin, digits.train, ctx).classifier, digits, ctx


@pytest.mark.parametrize(("victim", "n", "rounds"), [("mlp", 450, 5), ("lenet5", 150, 3)])
def test_deepfool_batched_vs_per_image(benchmark, victim, n, rounds):
    model, digits, ctx = trained(victim)
    x, y = digits.test.x[:n], digits.test.y[:n]
    batched, per_image = (get_registry().create("attacks", spec) for spec in ("deepfool", "ta-deepfool"))
    torch.testing.assert_close(batched.perturb(model, x, y, ctx), per_image.perturb(model, x, y, ctx),
                               rtol=0, atol=1e-4)
    seconds = median_times({"ta-deepfool": lambda: per_image.perturb(model, x, y, ctx),
                            "deepfool": lambda: batched.perturb(model, x, y, ctx)}, rounds)
    benchmark.pedantic(lambda: batched.perturb(model, x, y, ctx), rounds=3, iterations=1)
    speedup = seconds["ta-deepfool"] / seconds["deepfool"]
    rates = {f"{name}_images_per_s": n / value for name, value in seconds.items()}
    benchmark.extra_info.update(speedup=speedup, images=n, **rates)
    print(f"\n{victim}, {n} digits: ta-deepfool {rates['ta-deepfool_images_per_s']:.0f} images/s, "
          f"deepfool {rates['deepfool_images_per_s']:.0f} images/s: {speedup:.1f}x")


def test_autoattack_wrapper_overhead(benchmark):
    model, digits, ctx = trained("mlp")
    x, y = digits.test.x, digits.test.y
    wrapper = get_registry().create("attacks", "autoattack:eps=0.1,steps=10,queries=500")
    seed = ctx.generator(wrapper.salt).initial_seed()

    def direct():
        attack = standard_autoattack(model.module, "linf", 0.1, digits.info.num_classes, seed, 10, 500)
        return attack(x, y)

    def through_benchlab():
        return wrapper.perturb(model, x, y, ctx)

    torch.testing.assert_close(through_benchlab(), direct(), rtol=0, atol=1e-6)
    seconds = median_times({"direct": direct, "wrapper": through_benchlab}, rounds=3)
    benchmark.pedantic(through_benchlab, rounds=2, iterations=1)
    overhead = seconds["wrapper"] / seconds["direct"]
    benchmark.extra_info.update(overhead=overhead, **{f"{k}_s": v for k, v in seconds.items()})
    print(f"\nautoattack on {len(x)} digits: torchattacks directly {seconds['direct']:.2f} s, "
          f"through benchlab {seconds['wrapper']:.2f} s: overhead x{overhead:.2f}")
