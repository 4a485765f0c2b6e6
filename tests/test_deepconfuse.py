"""DeepConfuse: generator bound, the pseudo-update gradient, poisoning strength, reuse of cached poisons.

Scale: digits subsets and the small ``graynet`` surrogate; thresholds leave margin over what several
seeds showed (see the comments). One intra-op thread: on the shared 2-core machine two OpenMP
threads per process oversubscribe the cores and slow these second-order steps many times over.
"""

from __future__ import annotations

import pytest
import torch
from benchlab_deepconfuse import schedule
from benchlab_deepconfuse.confuse import ConfuseSettings, generator_objective, train_generator
from benchlab_deepconfuse.generator import SubPixelConvTranspose2d, build_generator, noise_of
from torch import nn

from benchlab.cell import Settings
from benchlab.matrix import load_matrix
from benchlab.plugins import get_registry
from benchlab.runner import run_matrix
from benchlab.store import ResultsStore
from benchlab.testing import check_plugin, make_context

TINY_SPEC = "deepconfuse:trials=1,maxiter=4,surrogate=graynet"


# One torch thread: the margins these tests assert were measured that way.
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def small():
    return get_registry().create("datasets", "digits:per_class=60").load()


def create(kind: str, spec: str):
    return get_registry().create(kind, spec)


def clean_accuracy(splits, poison, victim_spec: str, seed: int = 0, epochs: int = 10):
    victim = create("victims", victim_spec)
    ctx = make_context(splits, seed=seed, victim=victim, recipe_overrides={"epochs": epochs})
    return create("defenses", "erm").fit(victim, poison.data, ctx).classifier


# ---- the generator ----------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["encoder-decoder", "unet"])
@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32), (3, 7, 9)])
def test_generator_output_has_input_shape_and_never_exceeds_eps(kind, shape):
    torch.manual_seed(0)
    generator = build_generator(shape[0], 0.1, kind)
    with torch.no_grad():  # blow the weights up: every output saturates, and must still stay within eps
        for p in generator.parameters():
            p.mul_(50)
    x = torch.rand(5, *shape)
    noise = noise_of(generator, x)
    assert noise.shape == x.shape
    assert noise.abs().max() <= 0.1 + 1e-6
    assert noise.abs().max() > 0.09  # saturated, not silently zero


@pytest.mark.parametrize("cin,cout", [(16, 1), (32, 3), (5, 2)])
def test_sub_pixel_layer_equals_the_transposed_convolution_it_replaces(cin, cout):
    torch.manual_seed(0)
    layer = SubPixelConvTranspose2d(cin, cout).double()
    reference = nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1).double()
    reference.load_state_dict(layer.state_dict())  # same parameters, same names
    x = torch.randn(3, cin, 5, 7, dtype=torch.float64, requires_grad=True)
    out, expected = layer(x), reference(x)
    assert out.shape == expected.shape == (3, cout, 10, 14)
    torch.testing.assert_close(out, expected)
    upstream = torch.randn_like(out)
    grads = torch.autograd.grad(out, (x, layer.weight, layer.bias), upstream)
    expected_grads = torch.autograd.grad(expected, (x, reference.weight, reference.bias), upstream)
    for got, want in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(got, want)


def test_pseudo_update_gradient_matches_finite_differences():
    """∇_ξ L(f_θ'(x), y) through θ' = θ − α(μb + ∇_θ L(f_θ(x + g_ξ(x)), y)), vs central differences."""
    torch.manual_seed(0)
    surrogate = nn.Sequential(nn.Conv2d(1, 3, 3), nn.Tanh(), nn.Flatten(), nn.Linear(3 * 6 * 6, 4)).double()
    generator = build_generator(1, 0.1).double()
    x = 0.4 + 0.2 * torch.rand(6, 1, 8, 8, dtype=torch.float64)  # x + g(x) stays inside [0, 1]
    y = torch.randint(0, 4, (6,))
    params = dict(surrogate.named_parameters())
    velocity = {name: 0.1 * torch.randn_like(p) for name, p in params.items()}

    def objective():
        return generator_objective(surrogate, params, {}, generator, x, y, (y + 1) % 4, 0.5, velocity)

    weights = list(generator.parameters())
    analytic = torch.autograd.grad(objective(), weights)
    directions = [torch.randn_like(w) for w in weights]
    step = 1e-6

    def shifted(scale: float) -> float:
        with torch.no_grad():
            for w, d in zip(weights, directions):
                w.add_(scale * step * d)
        value = objective().item()  # needs autograd inside: the pseudo-update takes a gradient
        with torch.no_grad():
            for w, d in zip(weights, directions):
                w.sub_(scale * step * d)
        return value

    numeric = (shifted(1.0) - shifted(-1.0)) / (2 * step)
    projected = sum((g * d).sum() for g, d in zip(analytic, directions)).item()
    assert abs(projected) > 1e-6, "degenerate check: the objective does not depend on the generator"
    assert projected == pytest.approx(numeric, rel=1e-5)


def test_algorithm1_and_algorithm2_learn_the_same_generator(small):
    """Algorithm 2 only merges Algorithm 1's two loops: same batches, same θ_i, same updates of g."""
    surrogate = create("victims", "graynet")
    generators = []
    for algorithm in (1, 2):
        torch.manual_seed(0)
        generator = build_generator(1, 0.3)
        settings = ConfuseSettings(trials=2, maxiter=3, algorithm=algorithm, lr_g=1e-3)
        train_generator(generator, lambda: surrogate.build((1, 8, 8), 10), small.train, 10, settings, seed=0)
        generators.append(noise_of(generator, small.train.x[:64]))
    assert not torch.equal(generators[0], torch.zeros_like(generators[0]))
    torch.testing.assert_close(generators[0], generators[1], atol=1e-5, rtol=1e-4)


def test_a_longer_run_starts_with_the_shorter_one_and_keeps_its_most_damaging_generator(small):
    """Trial t does not depend on T, so more trials only add candidates to select=best's choice."""
    surrogate = create("victims", "graynet")
    runs = {}
    for trials in (2, 4):
        torch.manual_seed(0)
        generator = build_generator(1, 0.3)
        states = [{k: v.clone() for k, v in generator.state_dict().items()}]
        settings = ConfuseSettings(trials=trials, maxiter=3, lr_g=1e-3, select="best")
        records = train_generator(generator, lambda: surrogate.build((1, 8, 8), 10), small.train, 10, settings,
                                  seed=0, on_trial=lambda t, _: states.append(
                                      {k: v.clone() for k, v in generator.state_dict().items()}))
        runs[trials] = records, states, noise_of(generator, small.train.x[:64])
    (short, _, _), (long, states, long_noise) = runs[2], runs[4]
    for a, b in zip(short, long[:2], strict=True):
        assert a.values() == pytest.approx(b.values(), rel=1e-5, abs=1e-6)
    best = min(range(4), key=lambda t: long[t].surrogate_acc)
    assert long[best].surrogate_acc <= min(r.surrogate_acc for r in short)
    chosen = build_generator(1, 0.3)
    chosen.load_state_dict(states[best])
    torch.testing.assert_close(long_noise, noise_of(chosen, small.train.x[:64]))
    assert all(0 <= r.class_share <= 1 and 0 <= r.surrogate_acc <= 1 for r in long)


@pytest.mark.parametrize("n,side,expected", [(1347, 8, (128, 0.05, 20)), (3000, 28, (128, 0.05, 70)),
                                              (60000, 28, (128, 0.05, 704)), (400, 28, (32, 0.0125, 70)),
                                              (100, 28, (16, 0.00625, 70))])
def test_default_schedule_follows_the_data_size(n, side, expected):
    batch = schedule.batch_size(n)
    assert (batch, schedule.surrogate_rate(batch), schedule.trial_steps(n, batch, side, side)) == \
        pytest.approx(expected)


# ---- the poison -------------------------------------------------------------------------------

@pytest.mark.parametrize("spec", [TINY_SPEC, TINY_SPEC + ",target=shift", TINY_SPEC + ",algorithm=1"])
def test_contract(spec):
    check_plugin("attacks", spec)


@pytest.mark.parametrize("spec", ["deepconfuse-cnn-scaled", "deepconfuse-cnn-scaled:width=0.5"])
def test_scaled_cnn_contract(spec):
    check_plugin("victims", spec)


def test_one_trial_hurts_more_than_uniform_noise_of_the_same_eps(small):
    # Seeds 0 and 1 gave graynet 0.74 / 0.40 and mlp 0.74 / 0.72 vs uniform noise 0.87-0.89.
    ctx = make_context(small, seed=0)
    spec = "deepconfuse:eps=0.3,trials=1,maxiter=60,batch_size=64,lr_g=5e-4,surrogate=graynet"
    poison = create("attacks", spec).craft(small.train, ctx)
    uniform = create("attacks", "uniform-noise:eps=0.3").craft(small.train, ctx)
    assert (poison.data.x - small.train.x).abs().max() <= 0.3 + 1e-6
    for victim in ("graynet", "mlp"):
        attacked = clean_accuracy(small, poison, victim).accuracy(small.test.x, small.test.y)
        control = clean_accuracy(small, uniform, victim).accuracy(small.test.x, small.test.y)
        assert attacked < control - 0.08, f"{victim}: deepconfuse {attacked:.3f} vs uniform noise {control:.3f}"


@pytest.mark.slow
def test_label_specific_variant_raises_targeted_success_above_chance(small):
    # eta(y) = y + 1 mod 10; chance (uniform guessing) is 0.10, a clean model scores about 0.01.
    # With the default Adam rate 1e-3 the outcome depended on the CPU: seed 0 gave 0.24 on an AVX-512
    # machine but 0.08 on an AVX2 one (seeds 1-3 there: 0.33, 0.21, 0.24). At 5e-4 seeds 0-5 gave
    # 0.24, 0.33, 0.35, 0.34, 0.28, 0.30 on the AVX2 machine. Batches of 128 and short trials matter
    # too: with batches of 64 one seed in three stayed at the clean rate.
    ctx = make_context(small, seed=0)
    spec = "deepconfuse:eps=0.3,target=shift,surrogate=graynet,lr_g=5e-4"
    attack = create("attacks", spec)
    poison = attack.craft(small.train, ctx)
    victim = create("victims", "graynet")
    fitted = create("defenses", "erm").fit(victim, poison.data, make_context(
        small, victim=victim, recipe_overrides={"epochs": 10}))
    metrics = attack.metrics(poison, fitted, small, make_context(small, victim=victim))
    clean = create("defenses", "erm").fit(victim, small.train, make_context(
        small, victim=victim, recipe_overrides={"epochs": 10}))
    clean_rate = (clean.classifier.predict(small.test.x) == (small.test.y + 1) % 10).float().mean().item()
    assert clean_rate < 0.05
    assert metrics["targeted_success_rate"] > 1 / 10 + 0.03, metrics


# ---- reuse through the runner ------------------------------------------------------------------

MATRIX = f"""
name = "deepconfuse-reuse"
seeds = [0]
[recipe]
epochs = 2
[[block]]
name = "reuse"
datasets = ["digits:per_class=30"]
attacks = ["{TINY_SPEC},fraction=1", "{TINY_SPEC},fraction=0.5"]
defenses = ["erm", "gaussian-noise"]
victims = ["graynet", "random-forest:trees=10"]
"""


def test_cached_poison_and_generator_are_reused_across_defenses_victims_and_fractions(tmp_path, registry):
    path = tmp_path / "matrix.toml"
    path.write_text(MATRIX)
    out = tmp_path / "run"
    summary = run_matrix(load_matrix(str(path), registry), Settings(out=str(out)), show_progress=False)
    assert summary.counts["ok"] == 8, summary.line()
    rows = ResultsStore(out).rows()
    for half in (False, True):
        mine = [r for r in rows if ("fraction=0.5" in r["attack"]) == half]
        hits = [r["metrics"]["cache_hit_poison"] for r in mine]
        assert len(mine) == 4 and hits.count(False) == 1, hits  # crafted once, then read from the cache
    generator_hits = sorted(r["metrics"]["generator_cache_hit"] for r in rows)
    assert generator_hits.count(False) == 4 and generator_hits.count(True) == 4  # the 0.5 poison reused it
    metrics = rows[0]["metrics"]
    for name in ("noise_train_acc", "noise_test_acc", "noise_class_share", "test_acc", "test_acc_peak"):
        assert 0.0 <= metrics[name] <= 1.0, name
    figures = list((out / "cache" / "figures" / "deepconfuse").glob("*.png"))
    assert any(f.name.endswith("-confusion.png") for f in figures)
    assert any(f.name.endswith("-features.png") for f in figures)  # graynet has a representation split
    assert any(f.name.endswith("-convergence.png") for f in figures)
    assert all(r["metrics"]["seconds_generator"] > 0 for r in rows)  # kept when the generator is reused
