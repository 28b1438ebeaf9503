"""Training one architecture on one task with a named recipe."""

from metanas.training.recipes import DEFAULT_RECIPE, RECIPES, Recipe, get_recipe
from metanas.training.trainer import TrainResult, resolve_device, train_architecture

__all__ = [
    "DEFAULT_RECIPE", "RECIPES", "Recipe", "TrainResult", "get_recipe", "resolve_device",
    "train_architecture",
]
