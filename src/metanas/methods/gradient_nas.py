"""Gradient-based one-shot NAS from scratch on the target task: DARTS (first order) and GDAS.

Both search the same supernet BASE uses (same heads, cells, size and derivation), started from
a random initialisation instead of the meta-supernet, so they are BASE's "no meta-learning"
references on the same task and budget:

* ``darts``: first-order bilevel DARTS (Liu et al. 2019): each step, the architecture logits take
  an Adam step on a validation minibatch, then the weights an SGD step on a training minibatch;
  ops mixed by a plain softmax.
* ``gdas``: GDAS (Dong & Yang 2019): the same bilevel loop, but each forward pass samples one op
  per edge (Gumbel-max, one path per step) with the straight-through Gumbel-softmax gradient;
  temperature annealed linearly from 10 to 0.1 over the search steps.

The supernet size follows the recipe (``C``, ``N``; cpu-proxy: C=8, N=1). Budget: ``steps``
(default: BASE's default adaptation steps) capped by ``--budget SECONDS``; evaluations do not
apply. Candidates are ranked by the summed log-probability of the final distribution.
"""

from __future__ import annotations

from typing import ClassVar

from metanas.data import ImageDataset
from metanas.methods.base.config import BASEConfig
from metanas.methods.base.method import BASEMethod
from metanas.methods.interface import Budget, SearchMethod, SearchResult
from metanas.methods.options import GradientNASOptions
from metanas.supernet import TemperatureSchedule
from metanas.training import get_recipe, resolve_device


class GradientNAS(SearchMethod):
    """Shared driver: a fresh supernet, a bilevel search loop, derivation as in BASE."""

    sampling: ClassVar[str]
    Options = GradientNASOptions
    budget_kinds = frozenset({"seconds"})

    def __init__(self, recipe: str = "cpu-proxy", *, device: str = "cpu",
                 max_train_per_class: int | None = 500) -> None:
        self.recipe = get_recipe(recipe)
        self.device = str(resolve_device(device))
        self.max_train_per_class = max_train_per_class
        self.last_adaptations = []

    def temperature(self, steps: int) -> TemperatureSchedule | float:
        return 1.0

    def _search(
        self, dataset: ImageDataset, *, top: int, seed: int, budget: Budget | None,
        progress: bool,
        steps: int | None,
        space: str,
        feature_size: int,
        resolutions: tuple[int, ...],
        arch_lr: float | None,
    ) -> SearchResult:
        seconds = None if budget is None else budget.seconds
        config = BASEConfig(space=space, C=self.recipe.C, N=self.recipe.N,
                            resolutions=tuple(resolutions), feature_size=feature_size,
                            seed=seed, sampling=self.sampling,
                            **({"adapt_arch_lr": arch_lr} if arch_lr is not None else {}))
        engine = BASEMethod.untrained(config, seed=seed, device=self.device)
        nominal = steps if steps is not None else config.adapt_steps
        result = engine._run_search(
            dataset, top=top, seed=seed, seconds=seconds, mode="adapt",
            adapt_steps=steps if (steps is not None or seconds is None) else None, subsets=1,
            subset_classes=None, max_train_per_class=self.max_train_per_class,
            progress=progress, budget=budget,
            adapt_options={"bilevel": True, "sampling": self.sampling,
                           "tau": self.temperature(nominal)})
        self.last_adaptations = engine.last_adaptations
        result.method = self.name
        result.details.update({"recipe": self.recipe.name, "from_scratch": True,
                               "supernet": engine.supernet.config})
        return result


class DARTSSearch(GradientNAS):
    """First-order DARTS on the NB201 (or DARTS) supernet, from scratch."""

    name = "darts"
    sampling = "softmax"


class GDASSearch(GradientNAS):
    """GDAS: one sampled path per step (Gumbel-max, straight-through), from scratch."""

    name = "gdas"
    sampling = "hard"

    def temperature(self, steps: int) -> TemperatureSchedule:
        return TemperatureSchedule(10.0, 0.1, max(1, steps), "linear")
