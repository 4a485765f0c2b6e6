"""benchlab-lwa: Learning with a (Strong) Adversary (Huang, Xu, Schuurmans, Szepesvári, arXiv:1511.03034).

Attacks Adv_Alpha, Adv_Loss, Adv_Loss_Sign (budgeted and minimal-norm, every one with a ``source``
parameter for transfer / "Fixed" evaluation), defenses LWA (Algorithm 2), LWA_Rep (Algorithm 3)
and Goodfellow et al.'s mixed objective, and the matrix blocks reproducing the paper's tables.
"""

from benchlab import hookimpl

from . import adv_alpha, adv_loss, goodfellow, lwa, matrices

ATTACKS = [adv_alpha.AdvAlpha, adv_loss.AdvLoss, adv_loss.AdvLossSign,
           adv_alpha.AdvAlphaMin, adv_loss.AdvLossMin, adv_loss.AdvLossSignMin]
DEFENSES = [lwa.LWA, lwa.LWARep, goodfellow.Goodfellow]


@hookimpl
def register_attacks(register):
    for cls in ATTACKS:
        register(cls)


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

    register(resources.files(__name__) / "paper_results.toml")
