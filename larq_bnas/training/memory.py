"""Lean training memory: recompute the binary operations in the backward pass.

A BNAS binary operation (BatchNorm -> sign -> binary conv -> ReLU) keeps three
activation-sized tensors for its gradient besides its input: the BatchNorm output (the
straight-through estimator's mask needs it), the sign output (the convolution's filter
gradient needs it) and the one-padded sign output. ``recompute_binary_ops(model)`` wraps
every such operation in ``tf.recompute_grad``: only its input and output are kept, and the
backward pass recomputes the rest from the input. Gradients are unchanged (the
recomputation uses the same batch statistics); BatchNorm's moving statistics are updated
once per step, not twice (the recomputation runs with momentum 1, a no-op update).
Randomness stays outside the wrapped operations (drop path is applied by the cell to
their outputs), so recomputation reproduces the forward pass exactly.

``lean_graphs()`` turns grappler's constant folding off while training graphs are built:
with a static batch size it folds every Zeroise output (``x * 0``) into a constant of the
full activation shape, which stays in memory as long as the training function does.

Measured on BNAS-A, batch 64, 32 x 32 (``benchmarks/train_step.py``): peak memory 4.2 GB
without either, about 2.1 GB with both.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import tensorflow as tf


def _binary_op_classes() -> tuple[type, ...]:
    from larq_bnas.models.bnas.ops import BinaryConv, BinarySepConv

    return (BinaryConv, BinarySepConv)


@contextlib.contextmanager
def _frozen_statistics(layer: tf.keras.layers.Layer) -> Iterator[None]:
    norms = [m for m in layer.submodules if isinstance(m, tf.keras.layers.BatchNormalization)]
    saved = [m.momentum for m in norms]
    for m in norms:
        m.momentum = 1.0
    try:
        yield
    finally:
        for m, momentum in zip(norms, saved, strict=True):
            m.momentum = momentum


def _lean_call(layer: tf.keras.layers.Layer, call: Any) -> Any:
    @tf.autograph.experimental.do_not_convert
    def lean(inputs: tf.Tensor, training: bool | None = None, **kwargs: Any) -> tf.Tensor:
        if not training or kwargs or not isinstance(inputs, tf.Tensor):
            return call(inputs, training=training, **kwargs)
        traces: list[int] = []

        @tf.recompute_grad
        def forward(x: tf.Tensor) -> tf.Tensor:
            traces.append(1)
            if len(traces) == 1:
                return call(x, training=True)
            with _frozen_statistics(layer):  # the backward pass's recomputation
                return call(x, training=True)

        return forward(inputs)

    lean._larq_bnas_recompute = True
    return lean


def recompute_binary_ops(model: tf.keras.Model, classes: tuple[type, ...] | None = None) -> int:
    """Make every binary operation of ``model`` (``larq_bnas.models.bnas.ops.BinaryConv`` and
    ``BinarySepConv``, or ``classes``) recompute its intermediates in the backward pass
    instead of keeping them. Returns how many layers were wrapped (idempotent)."""
    classes = classes or _binary_op_classes()
    count = 0
    for module in model.submodules:
        if isinstance(module, classes):
            layer: Any = module
            if not getattr(layer.call, "_larq_bnas_recompute", False):
                layer.call = _lean_call(layer, layer.call)
            count += 1
    return count


@contextlib.contextmanager
def lean_graphs() -> Iterator[None]:
    """Build (and first run) training functions without grappler's constant folding."""
    previous = tf.config.optimizer.get_experimental_options()
    tf.config.optimizer.set_experimental_options({"constant_folding": False})
    try:
        yield
    finally:
        tf.config.optimizer.set_experimental_options(
            {"constant_folding": previous.get("constant_folding", True)}
        )
