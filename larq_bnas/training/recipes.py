"""Named training recipes: the papers' settings as optimizer + schedule + loss + callbacks.

A ``Recipe`` builds everything ``model.compile`` / ``model.fit`` need from the number of
epochs and steps per epoch, so it works from user code as well as from ``larq_bnas train``:

    recipe = get_recipe("bnas-cifar")
    recipe.compile(model, epochs=600, steps_per_epoch=196)
    model.fit(train, epochs=600, callbacks=recipe.callbacks(epochs=600, steps_per_epoch=196))

Weight decay is applied as the papers' PyTorch code does: coupled L2 (``wd * w`` added to
each gradient, i.e. ``wd / 2 * ||w||^2`` added to the loss) on every trainable variable.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import tensorflow as tf

from larq_bnas.training.optimizers import RAdam
from larq_bnas.training.schedules import (
    CosineRestarts,
    MomentumCycle,
    OneCycle,
    StepDrops,
    WarmupCosine,
    schedule_of,
)


@dataclass(frozen=True)
class Recipe:
    """One training recipe.

    Attributes:
        name: the recipe's name (``larq_bnas train --recipe NAME``).
        description: one line, with the source.
        make_optimizer: ``(epochs, steps_per_epoch) -> optimizer``.
        weight_decay: coupled L2 weight decay (0 for none).
        label_smoothing: label smoothing of the cross entropy.
        drop_path: maximum drop-path rate, ramped linearly over training (BNAS CIFAR).
        momentum_cycle: (high, low) SGD momentum cycle of the one-cycle policy.
        default_epochs: the paper's number of epochs.
        default_batch_size: the paper's batch size.
    """

    name: str
    description: str
    make_optimizer: Callable[[int, int], tf.keras.optimizers.Optimizer]
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    drop_path: float = 0.0
    default_epochs: int = 10
    default_batch_size: int = 64
    extra_callbacks: Callable[[tf.keras.optimizers.Optimizer], list] | None = field(
        default=None, repr=False
    )

    def optimizer(self, steps_per_epoch: int, epochs: int) -> tf.keras.optimizers.Optimizer:
        """A fresh optimizer with this recipe's schedule for ``epochs`` epochs of
        ``steps_per_epoch`` steps (schedules are step-based)."""
        if int(epochs) < 1:
            raise ValueError(f"epochs must be positive, got {epochs}")
        return self.make_optimizer(int(epochs), max(int(steps_per_epoch), 1))

    def loss(self) -> tf.keras.losses.Loss:
        # The zoo models end in a softmax; labels are integers.
        if self.label_smoothing:
            return _SmoothedSparseCrossEntropy(self.label_smoothing)
        return tf.keras.losses.SparseCategoricalCrossentropy()

    def compile(
        self,
        model: tf.keras.Model,
        *,
        epochs: int,
        steps_per_epoch: int,
        jit_compile: bool | str = "auto",
        **kwargs: Any,
    ) -> tf.keras.Model:
        """Compile ``model`` with this recipe (adds the L2 weight decay losses once)."""
        if self.weight_decay and not getattr(model, "_larq_bnas_weight_decay", False):
            add_weight_decay(model, self.weight_decay)
        metrics = [
            tf.keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
            tf.keras.metrics.SparseTopKCategoricalAccuracy(k=5, name="top5"),
        ]
        model.compile(
            optimizer=self.optimizer(steps_per_epoch, epochs),
            loss=self.loss(),
            metrics=metrics,
            jit_compile=jit_compile if jit_compile != "auto" else None,
            **kwargs,
        )
        return model

    def callbacks(
        self,
        *,
        epochs: int,
        steps_per_epoch: int,
        optimizer: tf.keras.optimizers.Optimizer | None = None,
    ) -> list:
        """The recipe's callbacks (drop-path ramp, momentum cycle)."""
        out: list = []
        if self.drop_path:
            from larq_bnas.models.bnas.cells import DropPathSchedule

            out.append(DropPathSchedule(self.drop_path, epochs))
        if self.extra_callbacks is not None and optimizer is not None:
            out += self.extra_callbacks(optimizer)
        return out


@tf.keras.utils.register_keras_serializable(package="larq_bnas")
class _SmoothedSparseCrossEntropy(tf.keras.losses.Loss):
    def __init__(
        self, smoothing: float = 0.1, name: str = "smoothed_crossentropy", **kwargs: Any
    ) -> None:
        super().__init__(name=name, **kwargs)
        self.smoothing = float(smoothing)

    def call(self, y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        n = tf.shape(y_pred)[-1]
        onehot = tf.one_hot(tf.cast(tf.reshape(y_true, [-1]), tf.int32), n)
        return tf.keras.losses.categorical_crossentropy(
            onehot, y_pred, label_smoothing=self.smoothing
        )

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "smoothing": self.smoothing}


def add_weight_decay(model: tf.keras.Model, weight_decay: float) -> None:
    """Add coupled L2 weight decay on every trainable variable: the gradient of the added
    loss is ``weight_decay * w``, as PyTorch's SGD ``weight_decay`` (the papers' code)."""
    for var in model.trainable_variables:
        model.add_loss(lambda v=var: weight_decay * tf.nn.l2_loss(v))
    model._larq_bnas_weight_decay = True  # noqa: SLF001


def _bnas_cifar(epochs: int, steps: int) -> tf.keras.optimizers.Optimizer:
    schedule = OneCycle(low=4e-4, high=5e-2, total_steps=epochs * steps)
    return tf.keras.optimizers.legacy.SGD(schedule, momentum=0.95)


def _momentum_cycle(optimizer: tf.keras.optimizers.Optimizer) -> list:
    schedule = schedule_of(optimizer)
    return [MomentumCycle(schedule)] if isinstance(schedule, OneCycle) else []


def _warmup(epochs: int) -> int:
    return min(5, max(epochs // 4, 0))


RECIPES: dict[str, Recipe] = {}


def register_recipe(recipe: Recipe) -> Recipe:
    RECIPES[recipe.name] = recipe
    return recipe


register_recipe(
    Recipe(
        "digits",
        "Fast default for the embedded digits: Adam 2e-3, 1 warm-up epoch, cosine to 0.",
        lambda e, s: tf.keras.optimizers.Adam(WarmupCosine(2e-3, e * s, warmup_steps=s)),
        default_epochs=12,
        default_batch_size=64,
    )
)
register_recipe(
    Recipe(
        "bnas-cifar",
        "BNAS CIFAR-10 (paper 5.1): SGD, one-cycle lr 4e-4..5e-2 (45/45/10 %), momentum "
        "0.95-0.85-0.95, weight decay 3e-6, drop path 0 -> 0.2; 600 epochs, batch 256.",
        _bnas_cifar,
        weight_decay=3e-6,
        drop_path=0.2,
        default_epochs=600,
        default_batch_size=256,
        extra_callbacks=_momentum_cycle,
    )
)
register_recipe(
    Recipe(
        "bnas-imagenet",
        "BNAS ImageNet: SGD lr 0.1 momentum 0.9, weight decay 3e-5, cosine restarts every 50 "
        "epochs to 1e-5, label smoothing 0.1, gradient clipping at global norm 5; 250 epochs.",
        lambda e, s: tf.keras.optimizers.legacy.SGD(
            CosineRestarts(0.1, 50 * s, 1e-5), momentum=0.9, global_clipnorm=5.0
        ),
        weight_decay=3e-5,
        label_smoothing=0.1,
        default_epochs=250,
        default_batch_size=256,
    )
)
register_recipe(
    Recipe(
        "meliusnet-imagenet",
        "MeliusNet: RAdam lr 0.002, cosine to 0, no weight decay; 120 epochs, batch 64.",
        lambda e, s: RAdam(WarmupCosine(0.002, e * s)),
        default_epochs=120,
        default_batch_size=64,
    )
)
register_recipe(
    Recipe(
        "meliusnet-40",
        "MeliusNet supplement (naive vs MeliusNet): Adam lr 0.001, x0.1 at epochs 35 and 37 "
        "(scaled to the run's epochs: at 7/8 and 37/40 of training).",
        lambda e, s: tf.keras.optimizers.Adam(
            StepDrops(0.001, [int(e * 35 / 40) * s, int(e * 37 / 40) * s])
        ),
        default_epochs=40,
        default_batch_size=64,
    )
)
register_recipe(
    Recipe(
        "adam",
        "Optimizer study (MeliusNet supplement 3): Adam, 5 warm-up epochs, cosine.",
        lambda e, s: tf.keras.optimizers.Adam(WarmupCosine(0.002, e * s, _warmup(e) * s)),
        default_epochs=120,
    )
)
register_recipe(
    Recipe(
        "radam",
        "Optimizer study (MeliusNet supplement 3): RAdam (no warm-up needed), cosine.",
        lambda e, s: RAdam(WarmupCosine(0.002, e * s)),
        default_epochs=120,
    )
)
register_recipe(
    Recipe(
        "sgd",
        "Optimizer study (MeliusNet supplement 3): SGD momentum 0.9, 5 warm-up epochs, cosine.",
        lambda e, s: tf.keras.optimizers.legacy.SGD(
            WarmupCosine(0.1, e * s, _warmup(e) * s), momentum=0.9
        ),
        default_epochs=120,
    )
)


def get_recipe(name: str) -> Recipe:
    """The recipe called ``name``; a ValueError lists the valid names."""
    if name not in RECIPES:
        raise ValueError(f"Unknown recipe {name!r}; valid recipes are: {', '.join(RECIPES)}")
    return RECIPES[name]
