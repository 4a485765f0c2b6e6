"""The plugin guide's examples are a working plugin: the contract checks pass on each of them."""

import re
import types
from pathlib import Path

import pytest

import benchlab
from benchlab.testing import check_plugin

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"


def guide_examples() -> dict[str, str]:
    """The guide's python code blocks that start with ``# example: KIND``, by kind."""
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), flags=re.S)
    return {m.group(1): block for block in blocks if (m := re.match(r"# example: (\w+)\n", block))}


@pytest.fixture(scope="module")
def guide_plugin(tmp_path_factory):
    """One module holding the guide's examples, as an author would paste them."""
    examples = guide_examples()
    assert {"evasion", "poison", "defense", "victim"} <= set(examples)
    module = types.ModuleType("guide_plugin")
    for kind in ("evasion", "poison", "defense", "victim", "generative"):
        exec(compile(examples[kind], f"docs/plugins.md:{kind}", "exec"), module.__dict__)
    return module


@pytest.mark.parametrize("kind, cls", [("attacks", "SignNoise"), ("attacks", "FlipToZero"),
                                       ("defenses", "LabelSmoothing"), ("victims", "TinyMLP"),
                                       ("victims", "TinyAutoencoder")])
def test_the_guides_examples_pass_the_contract_checks(guide_plugin, kind, cls):
    check_plugin(kind, getattr(guide_plugin, cls))


def test_the_guides_evasion_example_hurts_more_than_noise(guide_plugin, registry, digits):
    from benchlab.testing import TinyVictim, make_context

    ctx = make_context(digits, victim=TinyVictim())
    fitted = benchlab.TrainingDefense().fit(TinyVictim(), digits.train, ctx)
    x, y = digits.test.x, digits.test.y
    fgsm = guide_plugin.SignNoise(eps=0.2).perturb(fitted.classifier, x, y, ctx)
    noise = registry.create("attacks", "random-noise:eps=0.2").perturb(fitted.classifier, x, y, ctx)
    assert fitted.classifier.accuracy(fgsm, y) < fitted.classifier.accuracy(noise, y) - 0.2
