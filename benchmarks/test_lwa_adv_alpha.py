"""Adv_Alpha throughput: the batched softmax Jacobian (K backward passes per batch) against a
torchattacks-style per-image loop (K backward passes per image, as DeepFool's _construct_jacobian).

Both compute Algorithm 1 of Huang et al. (arXiv:1511.03034) on the same trained model and the same
512 digits, and must return the same adversarial images; the figure is the ratio of their times in
the same run. torchattacks' own one-step DeepFool (logits, not softmax) is timed as a reference.
"""


import pytest
import torch
import torchattacks

from benchlab.context import Context
from benchlab.plugins import get_registry

BATCH, C = 512, 1.0


@pytest.fixture(scope="module")
def setup():
    registry = get_registry()
    splits = registry.create("datasets", "digits").load()
    x, y = splits.train.x[:BATCH], splits.train.y[:BATCH]
    models = {}
    for spec in ("mlp", "lenet5"):
        victim = registry.create("victims", spec)
        ctx = Context(seed=0, device=torch.device("cpu"), info=splits.info, recipe_overrides={"epochs": 3})
        models[spec] = registry.create("defenses", "erm").fit(victim, splits.train, ctx).classifier
    return registry, ctx, x, y, models


def per_image_adv_alpha(module, x, y, c):
    """One image at a time: softmax Jacobian row by row, then Propositions 3/4 and the c-step (l2)."""
    out = []
    for image, label in zip(x, y):
        image = image[None].clone().requires_grad_(True)
        alpha = module(image).softmax(1)[0]
        rows = []
        for k in range(len(alpha)):
            (grad,) = torch.autograd.grad(alpha[k], image, retain_graph=k + 1 < len(alpha))
            rows.append(grad.flatten())
        jac = torch.stack(rows)
        best, best_w = float("inf"), None
        for j in range(len(alpha)):
            if j != label:
                w = jac[j] - jac[label]
                size = (alpha[label] - alpha[j]).clamp_min(0).item() / max(w.norm().item(), 1e-12)
                if size < best:
                    best, best_w = size, w
        step = c * best_w / best_w.norm().clamp_min(1e-12)
        out.append((image.detach() + step.view_as(image)).clamp(0, 1))
    return torch.cat(out)


@pytest.mark.parametrize("victim", ["mlp", "lenet5"])
def test_adv_alpha_batched_vs_per_image(benchmark, best_of, one_thread, setup, victim):
    registry, ctx, x, y, models = setup
    model = models[victim]
    attack = registry.create("attacks", f"adv-alpha:norm=l2,eps={C}")
    batched = attack.perturb(model, x, y, ctx)
    looped = per_image_adv_alpha(model.module, x, y, C)
    assert torch.allclose(batched, looped, atol=1e-5)  # the same Algorithm 1, only batched
    baseline = best_of(lambda: per_image_adv_alpha(model.module, x, y, C))
    deepfool = torchattacks.DeepFool(model.module, steps=1, overshoot=0.0)
    torchattacks_s = best_of(lambda: deepfool(x, y), repeats=1)
    benchmark.pedantic(attack.perturb, args=(model, x, y, ctx), rounds=5, iterations=1)
    ours = min(benchmark.stats.stats.data)
    ratio = baseline / ours
    benchmark.extra_info.update(per_image_s=baseline, batched_s=ours, speedup=ratio,
                                torchattacks_deepfool_1step_s=torchattacks_s, images=BATCH)
    print(f"\nadv-alpha on {BATCH} digits ({victim}): per-image loop {baseline:.3f}s, batched {ours:.4f}s, "
          f"speed-up {ratio:.1f}x (torchattacks DeepFool, 1 step: {torchattacks_s:.3f}s)")
