"""The EvoShift attack: CMA-ES over class-wise few-pixel patterns, scored by retrained surrogates.

Generation 0 contains the ``random-pixels`` pattern of the same seed (the paper's "Random" is
the search's starting point), so the best over all generations is never worse than it on the
search's own fitness. ``generations=0`` returns exactly the ``random-pixels`` poison, with this
plugin's metrics. The search only ever sees the training set: a surrogate subset and a disjoint
fitness hold-out drawn from it.
"""

from __future__ import annotations

import torch

from benchlab import (
    RANDOM_PATTERN_SALT,
    CraftingContext,
    Param,
    PoisonedSet,
    TensorData,
    fraction_param,
    missing_budget,
    poison_mask,
    random_pattern,
    resolve_budget,
)

from .patterns import Pattern, decode, dimension, encode
from .population import COSTS, Fitness, SearchData, perturb
from .search import CACHE_KIND, ResumableCMA, load_history, save_history
from .sensitivity import PatternPoison

# Parameters that change neither the search nor its result's meaning: left out of the resume key,
# so a longer search continues a shorter one and the evaluator choice shares the cache.
NOT_IN_SEARCH_KEY = ("generations", "batched")


def choose_among(eligible: torch.Tensor, fraction: float, generator: torch.Generator) -> torch.Tensor:
    """A bool mask selecting exactly ``round(fraction * n)`` of the ``n`` eligible examples."""
    index = eligible.nonzero().squeeze(1).cpu()
    keep = index[torch.randperm(len(index), generator=generator)[: round(fraction * len(index))]]
    mask = torch.zeros(len(eligible), dtype=torch.bool)
    mask[keep] = True
    return mask.to(eligible.device)


def pixel_params(default_classes: int = 0) -> tuple[Param, ...]:
    """Parameters every class-pattern poison of this plugin shares."""
    return (
        Param("pixels", int, None, "pixels per class N_p (None: the dataset's l0 budget)", low=1),
        Param("classes", int, default_classes, "attack only the first k classes (0 = all; Figure 6)", low=0),
        fraction_param(1.0),
    )


def pixel_incompatibility(attack, info) -> str | None:
    missing = missing_budget(attack.p.pixels, "l0", info)
    if missing:
        return missing
    pixels, (_, height, width) = attack.p.pixels or info.budgets["l0"], info.input_shape
    if pixels > height * width:
        return f"pixels={pixels} exceeds the {height}x{width} image"
    if attack.p.classes > info.num_classes:
        return f"classes={attack.p.classes} exceeds the dataset's {info.num_classes} classes"
    return None


class EvoShift(PatternPoison):
    """EvoShift: CMA-ES search for class-wise N_p-pixel patterns that make CNNs overfit (Algorithm 1).

    Reference: Chaudhury, Roy, Mishra, Yamasaki, "Adversarial Training Time Attack Against
    Discriminative and Generative Convolutional Models", IEEE Access 9, 2021,
    doi:10.1109/ACCESS.2021.3101282 (no arXiv version) -- Section V: pixel parameterisation (V-A),
    semantic mismatch cost eq. 6 (or Algorithm 1 line 4), domain divergence eq. 7, Algorithm 1.
    Each generation trains one fresh surrogate (GrayNet / ColorNet) per candidate on ``subset``
    perturbed training images for ``epochs`` epochs and scores it on as many held-out *training*
    images. Extras: ``locations``, ``values``, ``attacked`` and ``fitness`` (generations x popsize
    costs). Metrics: ``alpha_s``, ``alpha_n``, ``search_cost_gen0``, ``search_cost_best``.
    """

    name = "evoshift"
    version = "1"
    params = (
        *pixel_params(),
        Param("popsize", int, 8, "CMA-ES population size per generation (lambda)", low=2),
        Param("generations", int, 5, "CMA-ES generations (0: the random-pixels pattern, no search)", low=0),
        Param("subset", int, 500, "surrogate training images (as many others score them)", low=10),
        Param("epochs", int, 10, "surrogate training epochs per candidate (3 learn too little)", low=1),
        Param("divergence", float, 0.0, "weight of the domain-divergence term, eq. 7 (0: off)", low=0.0),
        Param("cost", str, "ce-gap", "ce-gap (eq. 6) or true-prob (Alg. 1 line 4)", choices=COSTS),
        Param("sigma0", float, 0.3, "initial CMA-ES step size in the unit box", low=1e-3, high=1.0),
        Param("surrogate", str, "auto", "victim trained in the search (auto: graynet gray, colornet colour)"),
        Param("batched", bool, True, "train each population at once under torch.func.vmap (same costs)"),
    )
    test_spec = "evoshift:popsize=4,generations=1,subset=60,epochs=1"

    def incompatibility(self, info, victim):
        return pixel_incompatibility(self, info)

    # ---- the poison --------------------------------------------------------------------------
    def craft(self, train: TensorData, ctx: CraftingContext) -> PoisonedSet:
        pixels = int(resolve_budget(self.p.pixels, "l0", ctx))
        num_classes = ctx.info.num_classes
        classes = self.p.classes or num_classes
        # Generation 0's injected member: exactly the random-pixels pattern of this seed.
        generator = ctx.generator(RANDOM_PATTERN_SALT)
        locations, values = random_pattern(num_classes, pixels, tuple(train.x.shape[1:]), generator)
        start = Pattern(locations[:classes], values[:classes])
        if classes == num_classes:
            mask = poison_mask(len(train), self.p.fraction, generator, train.device)
        else:
            mask = choose_among(train.y < classes, self.p.fraction, ctx.generator(505))
        fitness = torch.zeros(0, 0, dtype=torch.float64)
        pattern = start
        if self.p.generations:
            pattern, fitness = self.search(train, start, pixels, classes, ctx)
        extras = {**pattern.extras(num_classes), "fitness": fitness}
        return PoisonedSet(TensorData(perturb(train, mask, pattern), train.y), mask, extras)

    # ---- Algorithm 1 -------------------------------------------------------------------------
    def search(self, train: TensorData, start: Pattern, pixels: int, classes: int, ctx: CraftingContext):
        """Best pattern over all generations and the (generations, popsize) cost table."""
        shape = tuple(train.x.shape[1:])
        fitness = self.fitness(train, classes, ctx)

        x0 = torch.full((dimension(classes, pixels, shape[0]),), 0.5).numpy()
        cma = ResumableCMA(x0, self.p.sigma0, self.p.popsize, seed=ctx.seed, inject=encode(start, shape))
        slot = ctx.artifact(CACHE_KIND, self.search_key(train, pixels, ctx.seed))
        cached = load_history(slot)
        done = len(cached)  # replayed generations are not evaluated again

        def evaluate(solutions):
            nonlocal done
            ctx.progress.phase("CMA-ES generation", done, self.p.generations)
            done += 1
            return fitness([decode(z, classes, pixels, shape) for z in solutions])

        save = None if len(cached) >= self.p.generations else (
            lambda search, history: save_history(slot, search, history))
        history = cma.run(evaluate, self.p.generations, cached, on_generation=save)
        ctx.progress.phase("CMA-ES generation", self.p.generations, self.p.generations)
        best, _, _ = history.best()
        return decode(best, classes, pixels, shape), history.cost_tensor()

    def fitness(self, train: TensorData, classes: int, ctx: CraftingContext) -> Fitness:
        """The cost function of a search on ``train``: surrogate subset, hold-out and surrogate."""
        order = torch.randperm(len(train), generator=ctx.generator(501)).to(train.device)
        n_fit = min(self.p.subset, len(train) // 2)
        n_hold = min(self.p.subset, len(train) - n_fit)
        fit_set = train.subset(order[:n_fit])
        holdout = train.subset(order[n_fit : n_fit + n_hold])
        fit_mask = choose_among(fit_set.y < classes, self.p.fraction, ctx.generator(502))
        surrogate = self.surrogate(ctx)
        shape, num_classes = tuple(train.x.shape[1:]), ctx.info.num_classes
        return Fitness(SearchData(fit_set, holdout, fit_mask), lambda: surrogate.build(shape, num_classes),
                       surrogate.recipe.override(epochs=self.p.epochs), seed=ctx.seed * 1_000_003 + 504,
                       cost=self.p.cost, divergence=self.p.divergence, batched=self.p.batched)

    def surrogate(self, ctx: CraftingContext):
        name = self.p.surrogate
        if name == "auto":
            name = "graynet" if ctx.info.channels == 1 else "colornet"
        return ctx.create("victims", name)

    def search_key(self, train: TensorData, pixels: int, seed: int) -> tuple:
        """What determines a search: its parameters (those that only change the poisoned set excepted),
        the training data and the seed."""
        params = {k: v for k, v in self.values.items() if k not in NOT_IN_SEARCH_KEY}
        params["pixels"] = pixels  # resolved from the dataset budget when unset
        return self.name, self.version, params, train.fingerprint(), seed
