"""Training one architecture on one task with a named recipe."""

from metanas.training.recipes import DEFAULT_RECIPE, RECIPES, Recipe, get_recipe
from metanas.training.trainer import (
    DeadlineReached,
    TrainResult,
    resolve_device,
    train_architecture,
)

__all__ = [
    "DEFAULT_RECIPE", "RECIPES", "DeadlineReached", "Recipe", "TrainResult", "get_recipe", "resolve_device",
    "train_architecture",
]
