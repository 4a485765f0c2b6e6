"""One ``vaegan`` (and one ``vae``) training epoch against one classifier (GrayNet, ERM) epoch on the same data.

The same 1,347 digits training images, batch 64, Adam, one torch thread, timed interleaved
(``median_times``). VAE-GAN's step runs the encoder, the decoder twice (reconstruction and prior
sample) and the discriminator six times (three images for its own loss, three for the
encoder's and decoder's), so it should cost several classifier epochs; the ratio is what the
figure reports (seconds depend on the machine and its load).
"""

from __future__ import annotations

import pytest
import torch
from conftest import median_times

from benchlab import fit
from benchlab.plugins import get_registry
from benchlab.testing import make_context

pytestmark = pytest.mark.usefixtures("one_thread")
ROUNDS = 5


def test_vaegan_epoch_vs_classifier_epoch(benchmark):
    registry = get_registry()
    splits = registry.create("datasets", "digits").load()
    ctx = make_context(splits)
    classifier_victim = registry.create("victims", "graynet")
    classifier = classifier_victim.build(splits.info.input_shape, splits.info.num_classes)
    classifier_recipe = classifier_victim.recipe.override(epochs=1)
    sides = {"classifier": lambda: fit(classifier, splits.train, classifier_recipe, seed=0)}
    for spec in ("vaegan", "vae"):
        victim = registry.create("victims", spec)
        model = victim.build(splits.info.input_shape)
        recipe = victim.recipe.override(epochs=1)
        sides[spec] = lambda victim=victim, model=model, recipe=recipe: victim.fit(model, splits.train.x, recipe, ctx)
    torch.manual_seed(0)
    seconds = median_times(sides, ROUNDS)
    benchmark.pedantic(sides["vaegan"], rounds=3, iterations=1)
    ratios = {spec: seconds[spec] / seconds["classifier"] for spec in ("vaegan", "vae")}
    benchmark.extra_info.update(**{f"{k}_ratio": v for k, v in ratios.items()},
                                **{f"{k}_ms": 1000 * v for k, v in seconds.items()})
    print(f"\none epoch on digits: graynet {1000 * seconds['classifier']:.0f} ms, "
          f"vaegan {1000 * seconds['vaegan']:.0f} ms ({ratios['vaegan']:.1f}x), "
          f"vae {1000 * seconds['vae']:.0f} ms ({ratios['vae']:.1f}x)")
