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

# The known crosses. Image shortcut squeezing against the poisons, LeNet-5 (the victim on which they
# take the most); the erm rows are PAPER_DIGITS'.
DEFENDED_DIGITS = {
    "name": "standard-poisons-defended-digits",
    "description": "the poisons against iss (JPEG, quality 10), LeNet-5 on digits",
    "datasets": [DIGITS],
    "attacks": ["clean", "uniform-noise", "random-pixels:pixels=1", "error-min", "error-min:mode=class",
                "one-pixel-shortcut"],
    "defenses": ["iss"],
    "victims": ["lenet5"],
    "seeds": [0, 1, 2],
}

# Adversarial training at the poison's eps against error-min and the one-pixel shortcut. At linf 0.2:
# at the digits' 0.3 adversarial training leaves the MLP and LeNet-5 near chance even on clean data.
ADVERSARIAL_TRAINING_DIGITS = {
    "name": "standard-poisons-adversarial-training-digits",
    "description": "error-min and the one-pixel shortcut against pgd-at at the poison's eps (linf 0.2), digits MLP",
    "datasets": [DIGITS],
    "budgets": {DIGITS: {"linf": 0.2}},
    "attacks": ["clean", "error-min", "error-min:mode=class", "one-pixel-shortcut"],
    "defenses": ["erm", "pgd-at"],
    "victims": ["mlp"],
    "seeds": [0, 1, 2],
}

BLOCKS = [("smoke", SMOKE), ("paper", PAPER_DIGITS), ("paper", PAPER_FASHION), ("paper", DEFENDED_DIGITS),
          ("paper", ADVERSARIAL_TRAINING_DIGITS)]
