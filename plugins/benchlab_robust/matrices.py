"""Matrix blocks this plugin adds: a smoke block running each defense once at CI scale."""

from __future__ import annotations

# Adversarial training at linf 0.2 (the digits budget 0.3 is more than an 8x8 MLP can hold), few
# inner steps; iss against the clean data and a baseline poison, on a torch and a sklearn victim.
SMOKE = [
    {
        "name": "robust-training",
        "datasets": ["digits"],
        "budgets": {"digits": {"linf": 0.2}},
        "attacks": ["none", "pgd:steps=5"],
        "defenses": ["pgd-at:steps=3", "trades:steps=3", "fast-at"],
        "victims": ["mlp"],
        "recipe": {"epochs": 3},
    },
    {
        "name": "shortcut-squeezing",
        "datasets": ["digits"],
        "attacks": ["clean", "random-pixels"],
        "defenses": ["iss"],
        "victims": ["mlp", "random-forest:trees=50"],
        "recipe": {"epochs": 3},
    },
]


def blocks() -> list[tuple[str, dict]]:
    """(preset, block) pairs for the ``register_matrices`` hook."""
    return [("smoke", block) for block in SMOKE]
