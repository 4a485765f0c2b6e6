"""benchlab-adversary-critic: Adversary Critic (Matyasko & Chau, NeurIPS 2018) and its baselines."""

from benchlab import hookimpl

from . import matrices
from .defense import AdversaryCriticDefense
from .high_confidence_attack import HighConfidenceAttack
from .margin import MarginMaximization
from .vat import VirtualAdversarialTraining
from .victims import MLP3, LeNet5AC


@hookimpl
def register_attacks(register):
    register(HighConfidenceAttack)


@hookimpl
def register_defenses(register):
    register(AdversaryCriticDefense)
    register(VirtualAdversarialTraining)
    register(MarginMaximization)


@hookimpl
def register_victims(register):
    register(MLP3)
    register(LeNet5AC)


@hookimpl
def register_matrices(register):
    for preset, block in matrices.BLOCKS:
        register(preset, block)


@hookimpl
def register_paper_results(register):
    from importlib import resources

    register(resources.files(__name__) / "paper_results.toml")
