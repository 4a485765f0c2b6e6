"""The shared training loop: data stays on the device and is indexed in seeded batches.

In the spirit of airbench: no per-sample DataLoader, no worker processes, no host-device copies
inside the loop. Defenses customise training through ``objective`` (the per-batch loss) and
``batch_transform`` (data augmentation / noise), and get a per-epoch history back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from .data import TensorData
from .progress import Progress

Objective = Callable[[nn.Module, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
BatchTransform = Callable[[torch.Tensor, torch.Tensor, torch.Generator], tuple[torch.Tensor, torch.Tensor]]
OPTIMIZERS = ("sgd", "adam", "rmsprop")
SCHEDULES = ("none", "cosine", "step")
PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True)
class Recipe:
    """A victim's default training recipe; matrices and defenses override single fields."""

    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    # Adam's first-moment decay (beta1; beta2 stays 0.999). GAN-style training uses 0.5.
    beta1: float = 0.9
    weight_decay: float = 0.0
    epochs: int = 10
    batch_size: int = 128
    # "none" | "cosine" (per step, to zero) | "step" (rate halved every 40% of the epochs)
    schedule: str = "none"
    # Convolutions run in NHWC: oneDNN (CPU) and cuDNN pick faster kernels (see benchmarks/).
    channels_last: bool = True
    # "bf16": forward passes under bfloat16 autocast (weights, gradients and optimizer stay fp32).
    # Opt-in: faster on GPUs and AMX CPUs for larger convnets, but it changes the numbers.
    precision: str = "fp32"

    def override(self, **changes) -> Recipe:
        changes = {k: v for k, v in changes.items() if v is not None}
        unknown = set(changes) - set(asdict(self))
        if unknown:
            raise ValueError(f"unknown recipe fields {sorted(unknown)}; valid: {sorted(asdict(self))}")
        return replace(self, **changes)


# The recipe of small Adam-trained victims (MLPs, LeNet-style CNNs) on small images.
ADAM_RECIPE = Recipe(optimizer="adam", lr=1e-3, epochs=20, batch_size=64)


@dataclass
class History:
    """Per-epoch training record; final and peak clean test accuracy come from here."""

    train_acc: list[float] = field(default_factory=list)
    test_acc: list[float] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)

    @property
    def final_test_acc(self) -> float:
        return self.test_acc[-1] if self.test_acc else float("nan")

    @property
    def peak_test_acc(self) -> float:
        return max(self.test_acc) if self.test_acc else float("nan")

    def as_dict(self) -> dict:
        return asdict(self)


def make_optimizer(params, recipe: Recipe) -> torch.optim.Optimizer:
    """SGD uses Nesterov momentum when ``momentum > 0``; Adam and RMSprop ignore ``momentum``.

    SGD and Adam use the fused single-kernel update when every parameter is on a CPU or CUDA
    device: one pass over the weights instead of one per tensor (17 % of a LeNet-5 epoch on CPU,
    see benchmarks/test_trainer_throughput.py). RMSprop has no fused kernel.
    """
    params = list(params)
    fused = _fusable(params)
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum, fused=fused,
                               weight_decay=recipe.weight_decay, nesterov=recipe.momentum > 0)
    if recipe.optimizer == "adam":
        return torch.optim.Adam(params, lr=recipe.lr, betas=(recipe.beta1, 0.999), weight_decay=recipe.weight_decay,
                                fused=fused)
    if recipe.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    raise ValueError(f"unknown optimizer {recipe.optimizer!r}; valid: {', '.join(OPTIMIZERS)}")


def _fusable(params) -> bool | None:
    tensors = [p["params"] if isinstance(p, dict) else [p] for p in params]
    flat = [t for group in tensors for t in group]
    ok = bool(flat) and all(t.is_floating_point() and t.device.type in ("cpu", "cuda") for t in flat)
    return True if ok else None  # None: let torch choose (foreach on CUDA, loop elsewhere)


def cross_entropy(model: nn.Module, x: torch.Tensor, y: torch.Tensor):
    """The plain objective: returns (loss, logits) so the loop can count train accuracy for free."""
    logits = model(x)
    return F.cross_entropy(logits, y), logits


@torch.inference_mode()
def evaluate(model: nn.Module, data: TensorData, transform=None, batch_size: int = 256) -> float:
    """Accuracy of ``model`` on ``data`` (eval mode, batched); restores the previous mode.

    Batches of 256 keep convolution activations in cache: 1024 was 1.5-2x slower on CPU.
    """
    was_training = model.training
    model.eval()
    correct = 0
    for i in range(0, len(data), batch_size):
        x = data.x[i : i + batch_size]
        if transform is not None:
            x = transform(x)
        correct += (model(x).argmax(1) == data.y[i : i + batch_size]).sum().item()
    model.train(was_training)
    return correct / max(len(data), 1)


def fit(
    model: nn.Module,
    train: TensorData,
    recipe: Recipe,
    *,
    seed: int,
    monitor: TensorData | None = None,
    objective: Objective = cross_entropy,
    batch_transform: BatchTransform | None = None,
    input_transform=None,
    optimizer: torch.optim.Optimizer | None = None,
    progress: bool | Progress = False,
    desc: str = "train",
    on_epoch_end: Callable[[int], None] | None = None,
) -> History:
    """Train ``model`` in place on ``train`` (already on the model's device) and return its history.

    Train accuracy per epoch is the running accuracy over the epoch's batches; the last entry is
    replaced by a full evaluation so ``train_acc[-1]`` is the accuracy of the final model.
    ``monitor`` (the clean test set) is evaluated after every epoch for final and peak accuracy.
    ``on_epoch_end(epoch)`` runs after each epoch's last step, before that evaluation: defenses
    that train a second module (a critic) step its schedule or reset their statistics there.
    ``progress``: a cell's reporter (``ctx.progress``) gets ``training epoch k/n``; True shows a bar.
    """
    device = next(model.parameters()).device
    if recipe.precision not in PRECISIONS:
        raise ValueError(f"unknown precision {recipe.precision!r}; valid: {', '.join(PRECISIONS)}")
    if recipe.schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {recipe.schedule!r}; valid: {', '.join(SCHEDULES)}")
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=recipe.precision == "bf16")
    if recipe.channels_last and any(isinstance(m, nn.Conv2d) for m in model.modules()):
        model.to(memory_format=torch.channels_last)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    optimizer = optimizer or make_optimizer(model.parameters(), recipe)
    scheduler = epoch_scheduler = None
    steps_per_epoch = -(-len(train) // recipe.batch_size)
    if recipe.schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, recipe.epochs * steps_per_epoch)
    elif recipe.schedule == "step":
        epoch_scheduler = torch.optim.lr_scheduler.StepLR(optimizer, max(1, round(0.4 * recipe.epochs)), gamma=0.5)
    history = History()
    bar = tqdm(range(recipe.epochs), desc=desc, disable=progress is not True, leave=False, unit="epoch")
    reporter = progress if isinstance(progress, Progress) else Progress()
    reporter.phase("training epoch", 0, recipe.epochs)
    for epoch in bar:
        model.train()
        order = torch.randperm(len(train), generator=generator).to(device)
        correct = torch.zeros((), device=device)
        total_loss = torch.zeros((), device=device)
        for start in range(0, len(train), recipe.batch_size):
            index = order[start : start + recipe.batch_size]
            # index_select, not x[index]: the same gather, 2.1-2.7x faster per batch on CPU (benchmarks/).
            x, y = train.x.index_select(0, index), train.y.index_select(0, index)
            if batch_transform is not None:
                x, y = batch_transform(x, y, generator)
            if input_transform is not None:
                x = input_transform(x)
            with autocast:
                loss, logits = objective(model, x, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            # Accumulate on the device: no host sync per batch.
            correct += (logits.detach().argmax(1) == y).sum()
            total_loss += loss.detach() * len(y)
        if epoch_scheduler is not None:
            epoch_scheduler.step()
        if on_epoch_end is not None:
            on_epoch_end(epoch)
        history.train_acc.append(correct.item() / len(train))
        history.loss.append(total_loss.item() / len(train))
        if monitor is not None:
            history.test_acc.append(evaluate(model, monitor, input_transform))
            bar.set_postfix(test_acc=f"{history.test_acc[-1]:.3f}")
        reporter.phase("training epoch", epoch + 1, recipe.epochs)
    optimizer.zero_grad(set_to_none=True)  # don't keep a gradient-sized copy of the weights alive
    if recipe.epochs:
        history.train_acc[-1] = evaluate(model, train, input_transform)
    model.eval()
    return history
