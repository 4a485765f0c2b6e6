"""benchlab-evoshift: the EvoShift few-pixel training-time attack, its baselines, vibCE and alpha metrics.

Paper: Chaudhury, Roy, Mishra, Yamasaki, "Adversarial Training Time Attack Against Discriminative
and Generative Convolutional Models", IEEE Access 9, 2021, doi:10.1109/ACCESS.2021.3101282.
Attacks ``evoshift`` (Algorithm 1), ``jacobsen-pixels`` (prior-work baseline), ``evoshift-svf``
(Section V-E transfer); defenses ``vibce`` (eq. 11) and ``adabound`` (Figure 8); metrics
``alpha_s`` / ``alpha_n`` (eqs. 12-13); the paper's tables and figures as matrix blocks.
"""

from benchlab import hookimpl

from . import adabound, evoshift, jacobsen, matrices, svf, vibce

ATTACKS = [evoshift.EvoShift, jacobsen.JacobsenPixels, svf.EvoShiftSVF]
DEFENSES = [vibce.VIBCE, adabound.AdaBound]


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
    for preset, block in matrices.BLOCKS:
        register(preset, block)


@hookimpl
def register_paper_results(register):
    from importlib import resources

    register(resources.files(__name__) / "paper_results.toml")
