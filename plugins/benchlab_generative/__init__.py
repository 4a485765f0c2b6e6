"""benchlab-generative: generative victims, VAE-GAN (Larsen et al. 2016) and its pixel-loss VAE control,
and EvoShift's attack on a GAN (Chaudhury et al., IEEE Access 2021, Sec. V-D, VIII-I) as matrix blocks.
"""

from benchlab import hookimpl

from . import matrices, vaegan

VICTIMS = [vaegan.VAEGAN, vaegan.VAE]


@hookimpl
def register_victims(register):
    for cls in VICTIMS:
        register(cls)


@hookimpl
def register_matrices(register):
    for preset, block in matrices.BLOCKS:
        register(preset, block)


@hookimpl
def register_paper_results(register):
    from importlib import resources

    register(resources.files(__name__) / "paper_results.toml")
