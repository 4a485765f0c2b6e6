"""Matrix blocks: EvoShift's GAN experiment (Sec. V-D, VIII-I, Figures 3, 12, 13) at CPU scale, and a smoke block.

clean, ``random-pixels`` (the paper's "Random") and ``evoshift`` at N_p = 1, 2, 5, 10 against
``vaegan`` and the discriminator-free ``vae``, trained with ``erm`` (the model's own objective) and
ranked by reconstruction PSNR on the clean test images. The EvoShift searches are the specs of the
EvoShift plugin's own paper blocks, so a run of both crafts each poison once (the poison cache is
keyed by attack, dataset and seed, never by the victim).
"""

from __future__ import annotations

DIGITS_SEARCH = "popsize=12,generations=10,subset=500,epochs=10"
FMNIST_SEARCH = "popsize=8,generations=5,subset=300,epochs=5"
FMNIST = "fashion-mnist:per_class=100,test_per_class=50"
PIXELS = "{1,2,5,10}"
VICTIMS = ["vaegan", "vae"]


def gan_block(name: str, dataset: str, search: str, seeds: list[int]) -> dict:
    return {
        "name": name,
        "description": "EvoShift Sec. VIII-I: VAE-GAN vs VAE reconstruction PSNR, clean / Random / EvoShift, "
                       "N_p 1, 2, 5, 10",
        "datasets": [dataset],
        "attacks": ["clean", f"random-pixels:pixels={PIXELS}", f"evoshift:pixels={PIXELS},{search}"],
        "defenses": ["erm"],
        "victims": VICTIMS,
        "seeds": seeds,
        "metric": "recon_psnr",
        "requires": ["baselines", "evoshift"],
    }


BLOCKS = [
    ("paper", gan_block("generative-gan-digits", "digits", DIGITS_SEARCH, [0, 1])),
    ("paper", gan_block("generative-gan-fmnist", FMNIST, FMNIST_SEARCH, [0])),
    ("smoke", {
        "name": "generative-smoke",
        "description": "VAE-GAN and VAE on clean and random-pixel digits (few epochs)",
        "datasets": ["digits"],
        "attacks": ["clean", "random-pixels:pixels=2"],
        "defenses": ["erm"],
        "victims": ["vaegan:epochs=3", "vae:epochs=3"],
        "metric": "recon_psnr",
        "requires": ["baselines"],
    }),
]
