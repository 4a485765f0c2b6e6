"""benchlab-poisons: the field's standard poisons: unlearnable examples, adversarial poisoning,
the one-pixel shortcut and the BadNets backdoor."""

from benchlab import hookimpl

from . import adv_poison, badnets, error_min, matrices, one_pixel_shortcut

ATTACKS = (error_min.ErrorMinimizing, adv_poison.AdversarialPoison, one_pixel_shortcut.OnePixelShortcut,
           badnets.BadNets)


@hookimpl
def register_attacks(register):
    for cls in ATTACKS:
        register(cls)


@hookimpl
def register_matrices(register):
    for preset, block in matrices.BLOCKS:
        register(preset, block)


@hookimpl
def register_paper_results(register):
    from importlib import resources

    for source in sorted(resources.files(__name__).joinpath("paper_results").iterdir(), key=lambda s: s.name):
        if source.name.endswith(".toml"):
            register(source)
