"""Training: the papers' recipes, schedules and optimizers, and the resumable train job.

    from larq_bnas.training import get_recipe, train, evaluate
"""

from larq_bnas.training.distribute import get_strategy
from larq_bnas.training.optimizers import RAdam
from larq_bnas.training.recipes import RECIPES, Recipe, add_weight_decay, get_recipe
from larq_bnas.training.schedules import CosineRestarts, OneCycle, StepDrops, WarmupCosine
from larq_bnas.training.trainer import DIGITS_DEFAULTS, evaluate, save_weights, train

__all__ = [
    "DIGITS_DEFAULTS",
    "RECIPES",
    "CosineRestarts",
    "OneCycle",
    "RAdam",
    "Recipe",
    "StepDrops",
    "WarmupCosine",
    "add_weight_decay",
    "evaluate",
    "get_recipe",
    "get_strategy",
    "save_weights",
    "train",
]
