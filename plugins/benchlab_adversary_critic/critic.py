"""The multiclass adversary critic D (Figure 3) and its objective (eq. 4 with a gradient penalty).

D has one sigmoid output per class; the class label is used only at the final layer, to pick the
output ``D_k`` that judges whether ``(x, k)`` is natural or adversarial. Hidden layers use leaky
ReLU, and Gaussian noise is added to the input of every layer while training (Sec. 5). The noise
levels (0.1 on pixels, 0.5 on hidden units) and the leaky slope are not in the paper; they are the
values of the authors' released code. The gradient penalty (Gulrajani et al. 2017,
arXiv:1704.00028) is computed at the real and at the adversarial inputs separately, without
interpolating between them (Sec. 4).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class GaussianNoise(nn.Module):
    """Adds N(0, sigma²) noise in training mode; the identity in eval mode."""

    def __init__(self, sigma: float):
        super().__init__()
        self.sigma = sigma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.sigma == 0:
            return x
        return x + self.sigma * torch.randn_like(x)

    def extra_repr(self) -> str:
        return f"sigma={self.sigma}"


class AdversaryCritic(nn.Module):
    """k-output critic: ``forward(x, labels)`` returns the logit of ``D_label(x)`` per example."""

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int, width: int = 1200, depth: int = 2,
                 input_noise: float = 0.1, hidden_noise: float = 0.5, negative_slope: float = 0.2):
        super().__init__()
        size = input_shape[0] * input_shape[1] * input_shape[2]
        layers: list[nn.Module] = [nn.Flatten(), GaussianNoise(input_noise)]
        for _ in range(depth):
            layers += [nn.Linear(size, width), nn.LeakyReLU(negative_slope), GaussianNoise(hidden_noise)]
            size = width
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(size, num_classes)  # the only place the label enters

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x)).gather(1, labels[:, None]).squeeze(1)


def gradient_penalty(critic: AdversaryCritic, x: torch.Tensor,
                     labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logits, mean (||∇_x logit_label(x)||₂ - 1)²)`` at ``x`` itself (no interpolation)."""
    x = x.detach().requires_grad_(True)
    logits = critic(x, labels)
    if not len(x):
        return logits, logits.sum()  # an empty batch adds nothing (and keeps the graph valid)
    (grad,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
    return logits, (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()


def critic_objective(critic: AdversaryCritic, x_real: torch.Tensor, y_real: torch.Tensor, x_adv: torch.Tensor,
                     y_adv: torch.Tensor, grad_weight: float) -> tuple[torch.Tensor, dict]:
    """Eq. 4 as binary cross-entropy (natural pairs -> 1, adversarial pairs -> 0) plus the penalties.

    ``y_adv`` labels each adversarial input with the class it is now assigned to, so ``D_k`` learns
    to tell adversarial examples *of* class k from natural images of class k.
    """
    real, penalty_real = gradient_penalty(critic, x_real, y_real)
    adv, penalty_adv = gradient_penalty(critic, x_adv, y_adv)
    loss_real = F.softplus(-real).mean()  # -log D_y(x)
    loss_adv = F.softplus(adv).mean() if len(adv) else adv.sum()  # -log(1 - D_k(A_f(x; k)))
    loss = loss_real + loss_adv + grad_weight * (penalty_real + penalty_adv)
    parts = {"penalty_real": penalty_real.detach(), "penalty_adv": penalty_adv.detach(),
             "real_correct": (real.detach() > 0).float().sum(),
             "adv_correct": (adv.detach() < 0).float().sum()}
    return loss, parts


def fooling_objective(critic: AdversaryCritic, x_adv: torch.Tensor, y_adv: torch.Tensor) -> torch.Tensor:
    """The classifier's critic term of eq. 5 (non-saturating form): ``-log D_k(A_f(x; k))``."""
    if not len(x_adv):
        return x_adv.sum() * 0.0
    return F.softplus(-critic(x_adv, y_adv)).mean()
