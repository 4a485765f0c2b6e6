"""benchlab-deepconfuse: DeepConfuse training-time adversarial noise (Feng, Cai & Zhou, NeurIPS 2019).

Registers the ``deepconfuse`` poison attack (untargeted and label-specific), the scaled MNIST CNN
victims of its transfer study, and the paper's blocks of the ``smoke`` and ``paper`` matrices.
"""

from benchlab import hookimpl

from . import attack, matrices, victims


@hookimpl
def register_attacks(register):
    for cls in attack.ALL:
        register(cls)


@hookimpl
def register_victims(register):
    for cls in victims.ALL:
        register(cls)


@hookimpl
def register_matrices(register):
    for preset, block in matrices.BLOCKS:
        register(preset, block)


@hookimpl
def register_paper_results(register):
    from importlib import resources

    register(resources.files(__name__) / "paper_results.toml")
