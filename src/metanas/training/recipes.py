"""Named training recipes.

A recipe fixes everything about how one architecture is trained on one task (network size,
schedule, augmentation), so that evaluations in a knowledge base are comparable only when their
recipe hash matches. Recipes are frozen dataclasses; ``with_overrides`` makes a variant.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass

from metanas.errors import ConfigError


@dataclass(frozen=True)
class Recipe:
    """How to train: NB201 network size, SGD-nesterov + cosine schedule, augmentation."""

    name: str
    C: int
    N: int
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    momentum: float = 0.9
    nesterov: bool = True
    resolution: int | None = None
    """Input side in px; ``None`` keeps the task's resolution."""
    augment: str = "crop-flip"
    """``none``, ``crop`` (pad R/8, random crop) or ``crop-flip`` (plus horizontal flips)."""
    label_smoothing: float = 0.0
    warmup_epochs: int = 0
    """Epochs of linear learning-rate warm-up before the cosine schedule (over the remaining
    epochs). A budgeted fit times its warm-up epochs and then sets ``epochs`` to fill the
    budget: the warm-up does not depend on ``epochs``, so a replay gives the same weights."""
    max_steps: int | None = None
    """Stop after this many SGD steps (the last epoch is then partial, the cosine spans the
    steps): a budgeted fit fills its time to a step, not to a whole epoch."""
    lr_horizons: tuple[tuple[int, int], ...] = ()
    """``(step, total steps)`` of each cosine horizon after the warm-up, when a budgeted fit
    moved it more than once (the load changed while it trained): from each step on the rate
    decays by a cosine from where it was to 0 at that total, so a replay follows the same
    rates. Empty: one cosine over the recipe's steps."""
    eval_batch_size: int = 512
    description: str = ""

    def __post_init__(self) -> None:
        if self.augment not in ("none", "crop", "crop-flip"):
            raise ConfigError(f"recipe {self.name}: augment must be none, crop or crop-flip")
        for field in ("C", "N", "epochs", "batch_size", "eval_batch_size"):
            if getattr(self, field) < 1:
                raise ConfigError(f"recipe {self.name}: {field} must be >= 1")
        if not 0 < self.lr < float("inf"):  # also refuses NaN
            raise ConfigError(f"recipe {self.name}: lr must be > 0")
        if not self.weight_decay >= 0 or not self.momentum >= 0:
            raise ConfigError(f"recipe {self.name}: weight_decay and momentum must be >= 0")
        if self.nesterov and self.momentum == 0:
            raise ConfigError(f"recipe {self.name}: nesterov needs momentum > 0")
        if not 0 <= self.label_smoothing <= 1:
            raise ConfigError(f"recipe {self.name}: label_smoothing must be in [0, 1]")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(f"recipe {self.name}: max_steps must be >= 1 or None")
        if not 0 <= self.warmup_epochs < self.epochs:
            raise ConfigError(f"recipe {self.name}: warmup_epochs must be in [0, epochs)")
        if self.resolution is not None and self.resolution < 1:
            raise ConfigError(f"recipe {self.name}: resolution must be >= 1 px or None")
        try:  # a saved model's JSON gives lists
            horizons = tuple((int(s), int(t)) for s, t in self.lr_horizons)
        except (TypeError, ValueError):
            raise ConfigError(f"recipe {self.name}: lr_horizons must be (step, total) pairs, got "
                              f"{str(self.lr_horizons)[:60]}") from None
        if any(t <= s for s, t in horizons) or any(
                b[0] <= a[0] for a, b in zip(horizons, horizons[1:], strict=False)):
            raise ConfigError(f"recipe {self.name}: lr_horizons need increasing steps, each "
                              "before its total")
        object.__setattr__(self, "lr_horizons", horizons)

    def config(self) -> dict:
        """Everything that changes the result (the description does not)."""
        cfg = dataclasses.asdict(self)
        cfg.pop("description")
        cfg.pop("eval_batch_size")
        for key in ("warmup_epochs", "max_steps", "lr_horizons"):  # older recipes keep their hashes
            if not cfg[key]:
                cfg.pop(key)
        return cfg

    @property
    def hash(self) -> str:
        blob = json.dumps(self.config(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def with_overrides(self, **changes) -> Recipe:
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ConfigError(f"unknown recipe field(s): {', '.join(sorted(unknown))}")
        if changes and "name" not in changes:
            tag = ",".join(f"{k}={v}" for k, v in sorted(changes.items()))
            changes["name"] = f"{self.name}[{tag}]"
        return dataclasses.replace(self, **changes)


# SGD nesterov (momentum 0.9), cosine schedule, weight decay 5e-4 and crop+flip throughout.
RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        Recipe("cpu-proxy", C=8, N=1, epochs=6, batch_size=64, lr=0.05, weight_decay=5e-4,
               description="CPU proxy: C=8, N=1, task resolution (16-32 px), 6 epochs, batch "
               "64, SGD nesterov lr 0.05 cosine, wd 5e-4, crop+flip. A few seconds per "
               "evaluation on one core; the knowledge-base default."),
        Recipe("cpu-tiny", C=8, N=1, epochs=3, batch_size=32, lr=0.05, weight_decay=5e-4,
               description="Smoke-test recipe: like cpu-proxy with 3 epochs of batch 32."),
        Recipe("cpu-large", C=16, N=2, epochs=20, batch_size=64, lr=0.05, weight_decay=5e-4,
               resolution=32, description="The largest reference the CPU affords on a few "
               "tasks: C=16, N=2, 32 px, 20 epochs."),
        Recipe("nb201", C=16, N=5, epochs=200, batch_size=256, lr=0.1, weight_decay=5e-4,
               resolution=32, description="The NAS-Bench-201 recipe (GPU): C=16, N=5, 32 px, "
               "200 epochs, batch 256, SGD nesterov lr 0.1 cosine, wd 5e-4, crop+flip."),
    )
}

DEFAULT_RECIPE = "cpu-proxy"


def get_recipe(recipe: str | Recipe = DEFAULT_RECIPE, **overrides) -> Recipe:
    """A recipe by name, by variant name (``cpu-proxy[epochs=3,resolution=16]``, the form
    :meth:`Recipe.with_overrides` names its variants), or as given; plus optional overrides."""
    if isinstance(recipe, str):
        base, _, tail = recipe.partition("[")
        if base not in RECIPES:
            raise ConfigError(f"unknown recipe '{base}'; available: {', '.join(RECIPES)}")
        parsed = _parse_overrides(recipe, tail) if tail else {}
        recipe = RECIPES[base].with_overrides(**parsed) if parsed else RECIPES[base]
    return recipe.with_overrides(**overrides) if overrides else recipe


def _parse_overrides(text: str, tail: str) -> dict:
    if not tail.endswith("]"):
        raise ConfigError(f"recipe variant {text!r} must look like name[field=value,...]")
    types = {f.name: f.type for f in dataclasses.fields(Recipe)}
    out: dict = {}
    for item in filter(None, tail[:-1].split(",")):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in types or key == "name":
            raise ConfigError(f"recipe variant {text!r}: bad override {item!r}; fields: "
                              f"{', '.join(k for k in types if k != 'name')}")
        kind = str(types[key])
        try:
            if value == "None":
                out[key] = None
            elif "bool" in kind:
                out[key] = value.lower() in ("1", "true", "yes")
            elif "int" in kind:
                out[key] = int(value)
            elif "float" in kind:
                out[key] = float(value)
            else:
                out[key] = value
        except ValueError:
            raise ConfigError(f"recipe variant {text!r}: {key} cannot be {value!r}") from None
    return out
