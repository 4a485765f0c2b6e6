"""benchlab-baselines: victims, classic defenses and simple attacks that every study needs."""

from benchlab import hookimpl

from . import deepfool, defenses, evasion_attacks, poison_attacks, victims


@hookimpl
def register_victims(register):
    for cls in victims.ALL:
        register(cls)


@hookimpl
def register_defenses(register):
    for cls in defenses.ALL:
        register(cls)


@hookimpl
def register_attacks(register):
    for cls in (*poison_attacks.ALL, *evasion_attacks.ALL, *deepfool.ALL):
        register(cls)
