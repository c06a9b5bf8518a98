"""Learning-rate schedules of the papers, as Keras ``LearningRateSchedule``s (step based).

All take ``steps_per_epoch`` so that they can be stated in epochs as the papers do.
"""

from __future__ import annotations

import math
from typing import Any

import tensorflow as tf

_register = tf.keras.utils.register_keras_serializable(package="larq_bnas")


@_register
class OneCycle(tf.keras.optimizers.schedules.LearningRateSchedule):
    """The BNAS CIFAR one-cycle shape: rise from ``low`` to ``high`` over ``rise`` of
    training, fall back to ``low`` over ``fall``, then anneal towards ``low / 100``."""

    def __init__(
        self, low: float, high: float, total_steps: int, rise: float = 0.45, fall: float = 0.45
    ) -> None:
        self.low, self.high, self.total_steps = float(low), float(high), int(total_steps)
        self.rise, self.fall = float(rise), float(fall)

    def __call__(self, step: Any) -> tf.Tensor:
        t = tf.cast(step, tf.float32) / max(self.total_steps, 1)
        up = self.low + (self.high - self.low) * t / self.rise
        down = self.high - (self.high - self.low) * (t - self.rise) / self.fall
        tail_t = (t - self.rise - self.fall) / max(1 - self.rise - self.fall, 1e-8)
        tail = self.low - (self.low - self.low / 100) * tf.minimum(tail_t, 1.0)
        return tf.where(t < self.rise, up, tf.where(t < self.rise + self.fall, down, tail))

    def momentum(self, step: int, high: float = 0.95, low: float = 0.85) -> float:
        """The matching momentum cycle: high -> low -> high, constant in the tail."""
        t = step / max(self.total_steps, 1)
        if t < self.rise:
            return high - (high - low) * t / self.rise
        if t < self.rise + self.fall:
            return low + (high - low) * (t - self.rise) / self.fall
        return high

    def get_config(self) -> dict[str, Any]:
        return {
            "low": self.low,
            "high": self.high,
            "total_steps": self.total_steps,
            "rise": self.rise,
            "fall": self.fall,
        }


@_register
class WarmupCosine(tf.keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from 0 over ``warmup_steps``, then cosine decay to ``final``."""

    def __init__(
        self, initial: float, total_steps: int, warmup_steps: int = 0, final: float = 0.0
    ) -> None:
        self.initial, self.total_steps = float(initial), int(total_steps)
        self.warmup_steps, self.final = int(warmup_steps), float(final)

    def __call__(self, step: Any) -> tf.Tensor:
        step = tf.cast(step, tf.float32)
        warm = self.initial * (step + 1) / max(self.warmup_steps, 1)
        span = max(self.total_steps - self.warmup_steps, 1)
        progress = tf.clip_by_value((step - self.warmup_steps) / span, 0.0, 1.0)
        cosine = self.final + 0.5 * (self.initial - self.final) * (1 + tf.cos(math.pi * progress))
        return tf.where(step < self.warmup_steps, warm, cosine)

    def get_config(self) -> dict[str, Any]:
        return {
            "initial": self.initial,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "final": self.final,
        }


@_register
class CosineRestarts(tf.keras.optimizers.schedules.LearningRateSchedule):
    """Cosine annealing from ``initial`` to ``final``, restarted every ``period_steps``
    (BNAS ImageNet: every 50 epochs down to 1e-5)."""

    def __init__(self, initial: float, period_steps: int, final: float = 1e-5) -> None:
        self.initial, self.period_steps, self.final = (
            float(initial),
            int(period_steps),
            float(final),
        )

    def __call__(self, step: Any) -> tf.Tensor:
        step = tf.cast(step, tf.float32)
        t = tf.math.floormod(step, float(self.period_steps)) / self.period_steps
        return self.final + 0.5 * (self.initial - self.final) * (1 + tf.cos(math.pi * t))

    def get_config(self) -> dict[str, Any]:
        return {"initial": self.initial, "period_steps": self.period_steps, "final": self.final}


@_register
class StepDrops(tf.keras.optimizers.schedules.LearningRateSchedule):
    """Constant ``initial`` multiplied by ``factor`` at each boundary step (the MeliusNet
    supplement's 40-epoch schedule: x0.1 at epochs 35 and 37)."""

    def __init__(self, initial: float, boundaries: list[int], factor: float = 0.1) -> None:
        self.initial, self.boundaries, self.factor = float(initial), list(boundaries), float(factor)

    def __call__(self, step: Any) -> tf.Tensor:
        step = tf.cast(step, tf.float32)
        drops = (
            sum(tf.cast(step >= b, tf.float32) for b in self.boundaries) if self.boundaries else 0.0
        )
        return self.initial * tf.pow(self.factor, drops)

    def get_config(self) -> dict[str, Any]:
        return {"initial": self.initial, "boundaries": self.boundaries, "factor": self.factor}


def schedule_of(optimizer: tf.keras.optimizers.Optimizer) -> Any:
    """The ``LearningRateSchedule`` an optimizer was built with, or None (legacy
    optimizers return it as ``learning_rate``; new ones keep it in ``_learning_rate``)."""
    for attr in ("_learning_rate", "learning_rate"):
        try:
            value = getattr(optimizer, attr, None)
        except (AttributeError, TypeError, ValueError):
            continue
        if isinstance(value, tf.keras.optimizers.schedules.LearningRateSchedule):
            return value
    return None


class MomentumCycle(tf.keras.callbacks.Callback):
    """Set SGD momentum from a ``OneCycle`` schedule after every batch."""

    def __init__(self, schedule: OneCycle) -> None:
        super().__init__()
        self.schedule = schedule

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        step = int(self.model.optimizer.iterations.numpy())
        momentum = self.schedule.momentum(step)
        if hasattr(self.model.optimizer, "momentum"):
            self.model.optimizer.momentum = momentum
