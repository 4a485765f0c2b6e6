"""Matrix blocks: EvoShift's Table 4, Figures 6-8 and the SVF transfer at CPU scale, plus a smoke block.

The paper searches full MNIST / Fashion-MNIST; here the searches are sized for a 2-core CPU and
stated in the specs. On digits (8x8, 1,347 training images) one search is popsize 12 x 10
generations = 120 GrayNet surrogates, each trained 10 epochs on 500 training images and scored
on 500 others (about a minute or two on two cores); shorter-trained surrogates barely learn on 500
images and give a fitness too flat to search. Fashion-MNIST uses a
1,000-image subset and a smaller search (popsize 8 x 5 generations, 300 images, 5 epochs), and
one block on the full 60,000-image training set (N_p 1, 2, 5, seed 0, 10-epoch victims): the size at
which the paper's magnitudes appear (see the plugin README: a class pattern dominates a CE model
trained on 60,000 images, not one trained on 1,000 or on digits' 1,347).

"Random" is ``evoshift:generations=0``, bit-identical to ``random-pixels`` with the same pixels
and seed (tested) but reporting ``alpha_s`` / ``alpha_n``.
"""

from __future__ import annotations

DIGITS_SEARCH = "popsize=12,generations=10,subset=500,epochs=10"
FMNIST_SEARCH = "popsize=8,generations=5,subset=300,epochs=5"
FMNIST = "fashion-mnist:per_class=100,test_per_class=50"
PIXELS = "{1,2,5}"
SMOKE_SEARCH = "evoshift:pixels=1,popsize=4,generations=1,subset=60,epochs=1"


def table4(name: str, dataset: str, search: str, seeds: list[int]) -> dict:
    """Table 4 in shape: CE (erm) vs vibCE x Random vs EvoShift x N_p in {1, 2, 5}, plus clean rows."""
    return {
        "name": name,
        "description": "EvoShift Table 4: alpha_S / alpha_N, CE vs vibCE, Random vs EvoShift, N_p 1, 2, 5",
        "datasets": [dataset],
        "attacks": ["clean", f"evoshift:pixels={PIXELS},generations=0", f"evoshift:pixels={PIXELS},{search}",
                    "jacobsen-pixels:pixels=1"],
        "defenses": ["erm", "vibce"],
        "victims": ["graynet"],
        "seeds": seeds,
    }


def table4_full_fmnist() -> dict:
    """Table 4 on the full Fashion-MNIST training set (CPU budget: one seed, 10 epochs)."""
    return {
        "name": "evoshift-table4-fmnist-full",
        "description": "EvoShift Table 4, full Fashion-MNIST (60k): CE vs vibCE, Random vs EvoShift, N_p 1, 2, 5",
        "datasets": ["fashion-mnist"],
        "attacks": ["clean", f"evoshift:pixels={PIXELS},generations=0", f"evoshift:pixels={PIXELS},{FMNIST_SEARCH}"],
        "defenses": ["erm", "vibce"],
        "victims": ["graynet"],
        "seeds": [0],
        "recipe": {"epochs": 10},
    }


def figure(name: str, description: str, defenses: list[str], seeds: list[int]) -> dict:
    """A single-pixel (N_p = 1) comparison on digits: clean, Random and EvoShift under ``defenses``."""
    return {
        "name": name,
        "description": description,
        "datasets": ["digits"],
        "attacks": ["clean", "evoshift:pixels=1,generations=0", f"evoshift:pixels=1,{DIGITS_SEARCH}"],
        "defenses": defenses,
        "victims": ["graynet"],
        "seeds": seeds,
    }


BLOCKS = [
    ("paper", table4("evoshift-table4-digits", "digits", DIGITS_SEARCH, [0, 1, 2])),
    ("paper", table4("evoshift-table4-fmnist", FMNIST, FMNIST_SEARCH, [0])),
    ("paper", table4_full_fmnist()),
    ("paper", figure("evoshift-fig8-optimizers", "EvoShift Figure 8: SGD, Adam, RMSprop, AdaBound, N_p = 1",
                     ["erm:optimizer={sgd;adam;rmsprop}", "adabound"], [0, 1])),
    ("paper", figure("evoshift-fig7-regularizers",
                     "EvoShift Figures 7, 10, 11: dropout, weight decay, augment, median filter, noise",
                     ["erm", "dropout:p=0.4", "weight-decay:wd=0.01", "augment", "median-filter",
                      "gaussian-noise"], [0, 1])),
    ("paper", {
        "name": "evoshift-fig6-partial",
        "description": "EvoShift Figure 6: only the first k classes attacked (N_p = 2)",
        "datasets": ["digits"],
        "attacks": [f"evoshift:pixels=2,classes={{2,4,6,8}},{DIGITS_SEARCH}"],
        "defenses": ["erm"],
        "victims": ["graynet"],
        "seeds": [0],
    }),
    ("paper", {
        "name": "evoshift-svf-transfer",
        "description": "EvoShift Section V-E: digits search transferred to Fashion-MNIST by SVF sampling",
        "datasets": [FMNIST],
        "attacks": [f"evoshift-svf:source=digits,pixels={PIXELS},{DIGITS_SEARCH}"],
        "defenses": ["erm"],
        "victims": ["graynet"],
        "seeds": [0],
    }),
    # Smoke: every attack and defense once, three one-cell blocks of two-epoch victims.
    *[("smoke", {"name": f"evoshift-{i}", "datasets": ["digits"], "attacks": [attack], "defenses": [defense],
                 "victims": ["graynet"], "recipe": {"epochs": 2}})
      for i, (attack, defense) in enumerate([
          (SMOKE_SEARCH, "vibce"),
          ("jacobsen-pixels:pixels=1", "adabound"),
          ("evoshift-svf:pixels=1,source_per_class=6,popsize=4,generations=1,subset=20,epochs=1", "erm"),
      ])],
]
