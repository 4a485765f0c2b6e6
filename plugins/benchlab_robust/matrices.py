"""Matrix blocks this plugin adds: a smoke block running each defense once at CI scale, and the
``paper`` block that ``paper_results/*.toml`` compare with the papers' numbers."""

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


# The three adversarial-training defenses against erm at linf 0.2 on digits: clean accuracy (`none`),
# PGD-20 and AutoAttack. AutoAttack with 20 iterations and 1,000 Square queries (the standard
# version's 100 and 5,000 cost minutes per cell on a CPU; the ordering against PGD is what is read).
PAPER = {
    "name": "robust-adversarial-training-digits",
    "description": "pgd-at, trades and fast-at against erm under PGD-20 and AutoAttack at linf 0.2 on digits",
    "datasets": ["digits"],
    "budgets": {"digits": {"linf": 0.2}},
    "attacks": ["none", "pgd:steps=20", "autoattack:steps=20,queries=1000"],
    "defenses": ["erm", "pgd-at", "trades", "fast-at"],
    "victims": ["mlp"],
    "recipe": {"epochs": 10},
    "seeds": [0, 1, 2],
}


def blocks() -> list[tuple[str, dict]]:
    """(preset, block) pairs for the ``register_matrices`` hook."""
    return [("smoke", block) for block in SMOKE] + [("paper", PAPER)]
