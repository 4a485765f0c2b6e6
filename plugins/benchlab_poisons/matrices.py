"""The plugin's blocks of the ``smoke`` and ``paper`` matrices (registered via ``register_matrices``).

``paper``: the papers' default settings (CNN crafting models, eps = the dataset's L-inf budget 0.3,
one pixel, a 3x3 trigger on 10 % of the images) against plain ``erm`` victims, beside the controls
of the same budget; the README's results are these blocks.
"""

from __future__ import annotations

DIGITS = "digits"
FASHION = "fashion-mnist:per_class=300,test_per_class=100"
ATTACKS = ["clean", "uniform-noise", "random-pixels:pixels=1", "error-min", "error-min:mode=class", "adv-poison",
           "one-pixel-shortcut", "badnets"]

SMOKE = {
    "name": "standard-poisons-smoke",
    "description": "error-min, adv-poison, one-pixel-shortcut and badnets at toy cost",
    "datasets": [DIGITS],
    "attacks": ["error-min:surrogate_steps=5,noise_steps=3,max_rounds=2",
                "error-min:mode=class,surrogate_steps=5,max_rounds=2",
                "adv-poison:steps=5,epochs=1", "one-pixel-shortcut", "badnets"],
    "defenses": ["erm"],
    "victims": ["mlp"],
    "recipe": {"epochs": 3},
}

PAPER_DIGITS = {
    "name": "standard-poisons-digits",
    "description": "the standard poisons at their papers' settings vs same-budget controls, erm victims, digits",
    "datasets": [DIGITS],
    "attacks": ATTACKS,
    "defenses": ["erm"],
    "victims": ["mlp", "graynet", "lenet5"],
    "seeds": [0, 1, 2],
}

PAPER_FASHION = {
    **PAPER_DIGITS,
    "name": "standard-poisons-fashion",
    "description": "the standard poisons at their papers' settings vs same-budget controls, Fashion-MNIST subset",
    "datasets": [FASHION],
    "victims": ["mlp", "graynet"],
    "seeds": [0],
}

# The known crosses: adversarial training at the poison's eps against error-min (and the one-pixel
# shortcut, which it does not erase), image shortcut squeezing against the one-pixel shortcut; the
# erm rows are PAPER_DIGITS'. LeNet-5: the victim on which these poisons take the most.
DEFENDED_DIGITS = {
    "name": "standard-poisons-defended-digits",
    "description": "error-min and the one-pixel shortcut against pgd-at and iss, LeNet-5 on digits",
    "datasets": [DIGITS],
    "attacks": ["clean", "uniform-noise", "random-pixels:pixels=1", "error-min", "error-min:mode=class",
                "one-pixel-shortcut"],
    "defenses": ["pgd-at", "iss"],
    "victims": ["lenet5"],
    "seeds": [0, 1, 2],
}

BLOCKS = [("smoke", SMOKE), ("paper", PAPER_DIGITS), ("paper", PAPER_FASHION), ("paper", DEFENDED_DIGITS)]
