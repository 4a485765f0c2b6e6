"""The plugin's block of the ``smoke`` matrix: each poison once, at toy cost (its ``test_spec``)."""

from __future__ import annotations

SMOKE = {
    "name": "standard-poisons-smoke",
    "description": "error-min, adv-poison, one-pixel-shortcut and badnets at toy cost",
    "datasets": ["digits"],
    "attacks": ["error-min:surrogate_steps=5,noise_steps=3,max_rounds=2",
                "error-min:mode=class,surrogate_steps=5,noise_steps=3,max_rounds=2",
                "adv-poison:steps=5,epochs=1", "one-pixel-shortcut", "badnets"],
    "defenses": ["erm"],
    "victims": ["mlp"],
    "recipe": {"epochs": 3},
}

BLOCKS = [("smoke", SMOKE)]
