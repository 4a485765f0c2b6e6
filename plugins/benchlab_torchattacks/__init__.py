"""benchlab-torchattacks: torchattacks (MIT) attacks behind benchlab's evasion-attack interface."""

from benchlab import hookimpl

from . import attacks, autoattack, square


@hookimpl
def register_attacks(register):
    for cls in (*attacks.ALL, autoattack.AutoAttack, square.Square):
        register(cls)


@hookimpl
def register_matrices(register):
    # Each registered name once, tiny settings: a few seconds on digits.
    register("smoke", {
        "name": "torchattacks",
        "datasets": ["digits"],
        # deepfool (the baselines' batched DeepFool) beside ta-deepfool: the same row compares them.
        "attacks": ["ta:pgd,steps=5", "ta:deepfool,steps=20", "ta-deepfool:steps=20", "deepfool:steps=20",
                    "ta-cw:steps=30,lr=0.05", "autoattack:steps=5,queries=100", "square:queries=200"],
        "defenses": ["erm"],
        "victims": ["mlp"],
    })


@hookimpl
def register_paper_results(register):
    from importlib import resources

    register(resources.files(__name__) / "paper_results.toml")
