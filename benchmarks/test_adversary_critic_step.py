"""Cost of one adversary-critic training step relative to one plain ERM step, measured in the same run.

Both steps train the same classifier (the paper's 3-hidden-layer MLP at width 1200 and scaled to
256, benchlab's LeNet-5 and the authors' LeNet-5 of Table 1b, ``lenet5-ac``) on the same batch of
100 digits with Adam. The adversary-critic step contains the target search (one input gradient
per class), the critic update on a 5-step A_f, the 5-step A_f again with second-order terms, the
5-step way back of the cycle term, and the backward pass through all of it.
The reported figure is the ratio of best-of-N times, not the absolute seconds. The margin
maximization baseline's step (full input Jacobian + double backpropagation) is timed the same way.
"""

from __future__ import annotations

import pytest
import torch
from benchlab_adversary_critic.critic import AdversaryCritic
from benchlab_adversary_critic.defense import BETAS, AdversaryCriticDefense
from benchlab_adversary_critic.mapping import ClassConfidence
from benchlab_adversary_critic.margin import MarginMaximization
from torch.nn import functional as F

from benchlab.plugins import get_registry

BATCH = 100
REPEATS = 5
# ERM steps are milliseconds: many more repeats, so the best-of is not a scheduling hiccup.
ERM_REPEATS = 50


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: small double-backward graphs


@pytest.fixture(scope="module")
def batch():
    splits = get_registry().create("datasets", "digits").load()
    return splits.train.x[:BATCH], splits.train.y[:BATCH], splits.info


def _model(victim: str, info):
    torch.manual_seed(0)
    return get_registry().create("victims", victim).build(info.input_shape, info.num_classes)


def _erm_step(model, optimizer, x, y):
    loss = F.cross_entropy(model(x), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


VICTIMS = ["mlp3:width=1200", "mlp3:width=256", "lenet5", "lenet5-ac"]


def ratio_to_erm(benchmark, best_of, batch, victim: str, name: str, make_step) -> float:
    """Best-of time of ``make_step(model)()`` over the best-of time of a plain Adam ERM step, same run."""
    x, y, info = batch
    erm_model = _model(victim, info)
    erm_optimizer = torch.optim.Adam(erm_model.parameters(), lr=1e-3)
    baseline = best_of(lambda: _erm_step(erm_model, erm_optimizer, x, y), ERM_REPEATS, warmup=True)
    step = make_step(_model(victim, info))
    step()  # warm-up
    benchmark.pedantic(step, rounds=REPEATS, iterations=1)
    ours = min(benchmark.stats.stats.data)
    ratio = ours / baseline
    benchmark.extra_info.update(erm_step_s=baseline, step_s=ours, ratio=ratio, victim=victim)
    print(f"\n{victim}: ERM step {baseline * 1e3:.1f} ms, {name} step {ours * 1e3:.1f} ms, ratio {ratio:.1f}x")
    return ratio


def adversary_critic_step(model, x, y, num_classes: int = 10):
    """One ``adversary-critic`` training step (critic width 1200) of ``model`` on the batch (x, y)."""
    defense = AdversaryCriticDefense(critic_width=1200)
    critic = AdversaryCritic(tuple(x.shape[1:]), num_classes, defense.p.critic_width)
    opt_f = torch.optim.Adam(model.parameters(), lr=defense.p.lr, betas=BETAS)
    opt_d = torch.optim.Adam(critic.parameters(), lr=defense.p.critic_lr, betas=BETAS)
    confidence = ClassConfidence(torch.full((num_classes,), 0.9))
    return lambda: defense.step(model, critic, opt_f, opt_d, confidence, x, y)


def margin_step(model, x, y):
    """One margin-maximization training step (Adam) of ``model`` on the batch (x, y)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    objective = MarginMaximization().objective(model, None, None)

    def step():
        loss, _ = objective(model, x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


@pytest.mark.parametrize("victim", VICTIMS)
def test_adversary_critic_step_vs_erm_step(benchmark, best_of, batch, victim):
    x, y, info = batch
    ratio_to_erm(benchmark, best_of, batch, victim, "adversary-critic",
                 lambda model: adversary_critic_step(model, x, y, info.num_classes))


@pytest.mark.parametrize("victim", VICTIMS)
def test_margin_step_vs_erm_step(benchmark, best_of, batch, victim):
    x, y, _ = batch
    ratio_to_erm(benchmark, best_of, batch, victim, "margin", lambda model: margin_step(model, x, y))
