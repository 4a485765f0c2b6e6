"""DeepConfuse's blocks of the ``smoke`` and ``paper`` matrices (registered via ``register_matrices``).

Scale: the paper uses all of MNIST (60k images), T = 500 trials and 10 repetitions. The ``paper``
blocks here use scikit-learn's 8x8 digits (1347 training images), a 3000-image Fashion-MNIST subset
and all of Fashion-MNIST (``deepconfuse-fmnist``: 60k / 10k, 3 seeds), T = 15 trials whose length
follows the data size (``schedule.py``), and 3 seeds on digits (1 on the subset): the shape of Table 1
and Figures 4, 5, 6 and 10 (orderings and gaps), not their exact numbers.
"""

from __future__ import annotations

EPS = 0.3  # the paper's MNIST budget; digits and Fashion-MNIST are MNIST-like
DEEPCONFUSE = f"deepconfuse:eps={EPS}"
FRACTIONS = "{0,0.2,0.4,0.6,0.8,1}"
EPSILONS = "{0,0.05,0.1,0.15,0.2,0.25,0.3}"
DIGITS = "digits"
FASHION = "fashion-mnist:per_class=300,test_per_class=100"
# Figure 6: the original CNN, its doubled and halved versions, then non-neural models.
TRANSFER_VICTIMS = ["deepconfuse-cnn", "deepconfuse-cnn-scaled:width=2", "deepconfuse-cnn-scaled:width=0.5",
                    "lenet5", "random-forest", "svm-rbf"]

SMOKE = {
    "name": "deepconfuse-smoke",
    "description": "DeepConfuse at toy scale: one short trial, untargeted and label-specific",
    "datasets": [DIGITS],
    "attacks": ["deepconfuse:trials=1,maxiter=10,surrogate=graynet",
                "deepconfuse:target=shift,trials=1,maxiter=10,surrogate=graynet"],
    "defenses": ["erm"],
    "victims": ["graynet", "random-forest:trees=50"],
    "recipe": {"epochs": 3},
}

TABLE1_FIGURE6_DIGITS = {
    "name": "deepconfuse-table1-fig6-digits",
    "description": "Table 1 + Figure 6 on digits: clean vs uniform noise vs DeepConfuse (eps 0.3), transfer",
    "datasets": [DIGITS],
    "attacks": ["clean", f"uniform-noise:eps={EPS}", DEEPCONFUSE],
    "defenses": ["erm"],
    "victims": TRANSFER_VICTIMS,
    "seeds": [0, 1, 2],
}

TABLE1_FIGURE6_FASHION = {
    **TABLE1_FIGURE6_DIGITS,
    "name": "deepconfuse-table1-fig6-fashion",
    "description": "Table 1 + Figure 6 on a 3000-image Fashion-MNIST subset (eps 0.3)",
    "datasets": [FASHION],
    "seeds": [0],
}

# The paper's headline scale: the whole training set (60k / 10k, 28x28), 3 seeds. Each row carries the
# generator's crafting time (``seconds_generator``), recorded with the cached generator.
TABLE1_FIGURE6_FMNIST = {
    **TABLE1_FIGURE6_DIGITS,
    "name": "deepconfuse-fmnist",
    "description": "Table 1 + Figure 6 on all of Fashion-MNIST (60,000 / 10,000, eps 0.3), with crafting time",
    "datasets": ["fashion-mnist"],
    "seeds": [0, 1, 2],
}

FIGURE4_EPS = {
    "name": "deepconfuse-fig4-eps",
    "description": "Figure 4: test accuracy vs eps (0 to 0.3), uniform noise of the same eps as control",
    "datasets": [DIGITS],
    "attacks": [f"deepconfuse:eps={EPSILONS}", f"uniform-noise:eps={EPSILONS}"],
    "defenses": ["erm"],
    "victims": ["deepconfuse-cnn"],
    "seeds": [0],
}

FIGURE5_FRACTION = {
    "name": "deepconfuse-fig5-fraction",
    "description": "Figure 5: poisoned fraction 0 to 1 (one generator, reused) vs random label flips",
    "datasets": [DIGITS],
    "attacks": [f"{DEEPCONFUSE},fraction={FRACTIONS}", f"label-flip:fraction={FRACTIONS}"],
    "defenses": ["erm"],
    "victims": ["deepconfuse-cnn"],
    "seeds": [0],
}

FIGURE10_LABEL_SPECIFIC = {
    "name": "deepconfuse-fig10-label-specific",
    "description": "Figure 10 / Sec. 5.4: clean, untargeted and label-specific (y -> y+1) confusion matrices",
    "datasets": [DIGITS],
    # The default surrogate (the MNIST CNN, which pads 8x8 digits to 28x28) gave no targeted effect on
    # digits; the small graynet surrogate did (README): both are listed.
    "attacks": ["clean", DEEPCONFUSE, f"{DEEPCONFUSE},target=shift", f"{DEEPCONFUSE},target=shift,surrogate=graynet"],
    "defenses": ["erm"],
    "victims": ["deepconfuse-cnn"],
    "seeds": [0],
}

BLOCKS = [
    ("smoke", SMOKE),
    ("paper", TABLE1_FIGURE6_DIGITS),
    ("paper", TABLE1_FIGURE6_FASHION),
    ("paper", TABLE1_FIGURE6_FMNIST),
    ("paper", FIGURE4_EPS),
    ("paper", FIGURE5_FRACTION),
    ("paper", FIGURE10_LABEL_SPECIFIC),
]
