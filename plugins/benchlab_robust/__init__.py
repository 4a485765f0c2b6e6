"""benchlab-robust: the field's standard robust-training defenses.

PGD adversarial training (Madry et al., arXiv:1706.06083), TRADES (Zhang et al., arXiv:1901.08573),
fast FGSM adversarial training (Wong, Rice & Kolter, arXiv:2001.03994) and image shortcut
squeezing against availability poisons (Liu, Zhao & Larson, arXiv:2301.13838).
"""

from benchlab import hookimpl

from . import fast_at, iss, matrices, pgd_at, trades

DEFENSES = [pgd_at.PGDAdversarialTraining, trades.TRADES, fast_at.FastAdversarialTraining,
            iss.ImageShortcutSqueezing]


@hookimpl
def register_defenses(register):
    for cls in DEFENSES:
        register(cls)


@hookimpl
def register_matrices(register):
    for preset, block in matrices.blocks():
        register(preset, block)


@hookimpl
def register_paper_results(register):
    from importlib import resources

    for source in sorted(resources.files(__name__).joinpath("paper_results").iterdir(), key=lambda s: s.name):
        if source.name.endswith(".toml"):
            register(source)
