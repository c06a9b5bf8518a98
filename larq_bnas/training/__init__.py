"""Training: the papers' recipes, schedules and optimizers, and the resumable train job.

from larq_bnas.training import get_recipe, train, evaluate
"""

from larq_bnas.training.distribute import get_strategy
from larq_bnas.training.memory import lean_graphs, recompute_binary_ops
from larq_bnas.training.optimizers import RAdam
from larq_bnas.training.recipes import RECIPES, Recipe, add_weight_decay, get_recipe
from larq_bnas.training.schedules import (
    CosineRestarts,
    MomentumCycle,
    OneCycle,
    StepDrops,
    WarmupCosine,
    schedule_of,
)
from larq_bnas.training.trainer import DIGITS_DEFAULTS, evaluate, save_weights, train

__all__ = [
    "DIGITS_DEFAULTS",
    "RECIPES",
    "CosineRestarts",
    "MomentumCycle",
    "OneCycle",
    "RAdam",
    "Recipe",
    "StepDrops",
    "WarmupCosine",
    "add_weight_decay",
    "evaluate",
    "get_recipe",
    "get_strategy",
    "lean_graphs",
    "recompute_binary_ops",
    "save_weights",
    "schedule_of",
    "train",
]
