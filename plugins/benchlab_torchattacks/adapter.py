"""The bridge torchattacks needs: a benchlab Classifier seen as an ``nn.Module`` returning logits.

torchattacks calls ``model(x)`` on inputs in [0, 1], reads the device from ``model.parameters()``
and toggles ``model.eval()`` / ``model.train()`` around every attack. The adapter routes ``forward``
through :meth:`Classifier.logits`, so a defense's input transform (e.g. a median filter) is part
of what is attacked, exactly as the runner evaluates it.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

from benchlab import Classifier, Progress, chunks


class ClassifierModule(nn.Module):
    """``nn.Module`` view of a differentiable benchlab :class:`Classifier` (logits out)."""

    def __init__(self, classifier: Classifier, device: torch.device):
        super().__init__()
        self.classifier = classifier
        module = getattr(classifier, "module", None)
        if isinstance(module, nn.Module):
            self.wrapped = module  # registered, so torchattacks finds the parameters and the device
        else:  # a differentiable classifier without a module: a placeholder pins the device
            self.placeholder = nn.Parameter(torch.zeros(0, device=device), requires_grad=False)
        # torchattacks restores train() after an attack when the model *was* training; the adapter
        # must start in eval mode or a fresh adapter would switch the victim into training mode.
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier.logits(x)


@contextmanager
def frozen(module: nn.Module):
    """Parameters stop requiring gradients for the duration, then get their old flags back.

    Some torchattacks attacks (DeepFool) call ``backward()``; without this they would fill the
    victim's ``.grad`` buffers with junk and waste the memory of a parameter gradient per call.
    """
    flags = [(p, p.requires_grad) for p in module.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield module
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def run_in_chunks(attack, x: torch.Tensor, y: torch.Tensor, device: torch.device,
                  progress: Progress | None = None) -> torch.Tensor:
    """``attack(x, y)`` chunk by chunk on ``device`` (bounded memory), clipped to [0, 1], on ``x``'s
    device; ``progress`` (the cell's ``ctx.progress``) hears ``batch k/n``."""
    parts = [attack(x[s].to(device), y[s].to(device)).detach()
             for s in (progress or Progress()).steps(chunks(len(x)), "batch")]
    # Some attacks (DeepFool) do not clip their last step exactly to the box.
    return torch.cat(parts).clamp(0.0, 1.0).to(x.device) if parts else x.clone()
