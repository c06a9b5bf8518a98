"""``SearchModel``: the BNAS search as ``model.fit`` over (train batch, validation batch) pairs.

One search step (paper 4.3 / 5.1, first-order as in the reference):

1. architecture step on the validation batch: the architecture loss
   ``CE - lambda * H(alpha) * exp(-t / tau)`` (paper eq. 5, the diversity regularizer;
   ``H`` the mean entropy of softmax(alpha) over all 28 rows, ``t`` the 0-based epoch) is
   minimised over ``alpha_normal`` and ``alpha_reduce`` only, with Adam (lr 3e-4,
   betas 0.5 / 0.999) and an L2 weight decay of 1e-3 added to the gradient (PyTorch
   ``Adam(weight_decay=...)`` semantics);
2. weight step on the training batch: cross-entropy over every other variable with SGD
   (lr 0.025, momentum 0.9) and an L2 weight decay of 3e-4 added to the gradient before
   momentum (PyTorch ``SGD(weight_decay=...)`` semantics, i.e. coupled L2, not decoupled).
   The learning rate follows a cosine from 0.025 to 0.001 over the search epochs, set per
   epoch (PyTorch ``CosineAnnealingLR`` stepped per epoch).

The current epoch lives in the variable ``search_epoch``, which ``SearchEpoch`` (added
by ``fit`` automatically) sets at the start of each epoch, so the compiled step sees it.
Both optimizers, the alphas and the epoch are tracked attributes of the model, so Keras
``BackupAndRestore`` checkpoints and restores all of them.
"""

from __future__ import annotations

import math
from typing import Any

import tensorflow as tf

from larq_bnas.search.supernet import Supernet, SupernetConfig

#: The paper's search hyper-parameters.
WEIGHT_LR = 0.025
WEIGHT_LR_MIN = 0.001
WEIGHT_MOMENTUM = 0.9
WEIGHT_DECAY = 3e-4
ARCH_LR = 3e-4
ARCH_BETAS = (0.5, 0.999)
ARCH_WEIGHT_DECAY = 1e-3
DIVERSITY_LAMBDA = 1.0
DIVERSITY_TAU = 7.7
#: The paper's search length; tau is 7.7 of these 50 epochs.
PAPER_SEARCH_EPOCHS = 50
#: tau as a fraction of the search length (7.7 / 50): the regularizer's decay scaled to
#: the budget, so a 6-epoch search decays as the paper's 50-epoch one does.
DIVERSITY_TAU_FRACTION = DIVERSITY_TAU / PAPER_SEARCH_EPOCHS


def scaled_tau(epochs: int) -> float:
    """The diversity regularizer's tau for a search of ``epochs`` epochs: the paper's 7.7
    of 50 epochs, scaled (``epochs * 7.7 / 50``; 7.7 at 50 epochs)."""
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    return DIVERSITY_TAU_FRACTION * epochs


def alpha_entropy(*alphas: tf.Tensor) -> tf.Tensor:
    """Mean entropy (nats) of softmax(alpha) over all rows of all given alpha matrices."""
    rows = tf.concat([tf.reshape(a, (-1, a.shape[-1])) for a in alphas], axis=0)
    log_p = tf.nn.log_softmax(rows, axis=-1)
    return tf.reduce_mean(-tf.reduce_sum(tf.exp(log_p) * log_p, axis=-1))


def cosine_lr(
    epoch: int, epochs: int, lr: float = WEIGHT_LR, lr_min: float = WEIGHT_LR_MIN
) -> float:
    """The weight learning rate of epoch ``epoch`` (0-based) of ``epochs``."""
    return lr_min + (lr - lr_min) * (1 + math.cos(math.pi * epoch / max(epochs, 1))) / 2


class SearchEpoch(tf.keras.callbacks.Callback):
    """Set the model's ``search_epoch`` and the cosine weight learning rate each epoch."""

    def __init__(self, epochs: int) -> None:
        super().__init__()
        self.epochs = int(epochs)

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        model: SearchModel = self.model
        model.search_epoch.assign(float(epoch))
        model.optimizer.learning_rate.assign(
            cosine_lr(epoch, self.epochs, model.weight_lr, model.weight_lr_min)
        )


class SearchModel(Supernet):
    """The supernet with the BNAS search step as its ``train_step``.

    ``fit`` takes a dataset of ``((x_train, y_train), (x_val, y_val))`` pairs; each pair
    is one architecture step (validation batch) then one weight step (training batch).
    ``evaluate`` takes ``(x, y)`` batches (or pairs, scoring the validation half).

    Args:
        config: the supernet (``SupernetConfig``; keyword overrides allowed).
        diversity_lambda: lambda of the diversity regularizer (0 turns it off: "No Div").
        diversity_tau: tau, the regularizer's decay in epochs.

    Metrics (epoch means): ``loss`` / ``accuracy`` (weight step, training batch),
    ``arch_loss`` (architecture step, validation batch, regularizer included),
    ``arch_ce`` / ``arch_accuracy`` (its cross-entropy and accuracy), ``entropy``
    (H(alpha) after each step) and ``div_weight`` (lambda * exp(-t / tau)).
    """

    def __init__(
        self,
        config: SupernetConfig | None = None,
        *,
        diversity_lambda: float = DIVERSITY_LAMBDA,
        diversity_tau: float = DIVERSITY_TAU,
        name: str = "bnas_search",
        **overrides: Any,
    ) -> None:
        if diversity_lambda < 0:
            raise ValueError(f"diversity_lambda must be >= 0, got {diversity_lambda}")
        if diversity_tau <= 0:
            raise ValueError(f"diversity_tau must be > 0, got {diversity_tau}")
        super().__init__(config, name=name, **overrides)
        self.diversity_lambda = float(diversity_lambda)
        self.diversity_tau = float(diversity_tau)
        self.search_epoch = tf.Variable(0.0, trainable=False, name="search_epoch")
        self.weight_lr, self.weight_lr_min = WEIGHT_LR, WEIGHT_LR_MIN
        self.weight_decay, self.arch_weight_decay = WEIGHT_DECAY, ARCH_WEIGHT_DECAY
        self.arch_optimizer: tf.keras.optimizers.Optimizer | None = None
        self.loss_tracker = tf.keras.metrics.Mean(name="loss")
        self.accuracy_tracker = tf.keras.metrics.SparseCategoricalAccuracy(name="accuracy")
        self.arch_loss_tracker = tf.keras.metrics.Mean(name="arch_loss")
        self.arch_ce_tracker = tf.keras.metrics.Mean(name="arch_ce")
        self.arch_accuracy_tracker = tf.keras.metrics.SparseCategoricalAccuracy(
            name="arch_accuracy"
        )
        self.entropy_tracker = tf.keras.metrics.Mean(name="entropy")
        self.div_weight_tracker = tf.keras.metrics.Mean(name="div_weight")

    # --- setup -------------------------------------------------------------------------
    def compile(
        self,
        optimizer: tf.keras.optimizers.Optimizer | None = None,
        arch_optimizer: tf.keras.optimizers.Optimizer | None = None,
        *,
        learning_rate: float = WEIGHT_LR,
        min_learning_rate: float = WEIGHT_LR_MIN,
        weight_decay: float = WEIGHT_DECAY,
        arch_learning_rate: float = ARCH_LR,
        arch_weight_decay: float = ARCH_WEIGHT_DECAY,
        jit_compile: bool = False,
        **kwargs: Any,
    ) -> None:
        """Set up both optimizers (defaults: the paper's) and compile the search step.

        Args:
            optimizer: the weight optimizer (default SGD, momentum 0.9).
            arch_optimizer: the architecture optimizer (default Adam, betas 0.5/0.999).
            learning_rate, min_learning_rate: the cosine schedule's ends.
            weight_decay: L2 added to the weight gradients.
            arch_learning_rate: Adam's learning rate.
            arch_weight_decay: L2 added to the alpha gradients.
            jit_compile: compile the step with XLA (off by default: on this 2-core CPU
                the plain graph is faster and XLA's compile of the 8-cell supernet takes
                minutes; see ``benchmarks/search_step.py``).
        """
        self.weight_lr, self.weight_lr_min = float(learning_rate), float(min_learning_rate)
        self.weight_decay, self.arch_weight_decay = float(weight_decay), float(arch_weight_decay)
        optimizer = optimizer or tf.keras.optimizers.SGD(learning_rate, momentum=WEIGHT_MOMENTUM)
        self.arch_optimizer = arch_optimizer or tf.keras.optimizers.Adam(
            arch_learning_rate, beta_1=ARCH_BETAS[0], beta_2=ARCH_BETAS[1]
        )
        super().compile(optimizer=optimizer, jit_compile=jit_compile, **kwargs)
        # Create the optimizer slots now, so a checkpoint restores them before step one.
        self.optimizer.build(self.weight_variables)
        self.arch_optimizer.build(self.arch_parameters)

    @property
    def metrics(self) -> list[tf.keras.metrics.Metric]:
        return [
            self.loss_tracker,
            self.accuracy_tracker,
            self.arch_loss_tracker,
            self.arch_ce_tracker,
            self.arch_accuracy_tracker,
            self.entropy_tracker,
            self.div_weight_tracker,
        ]

    def diversity_weight(self) -> tf.Tensor:
        """lambda * exp(-t / tau) at the current ``search_epoch``."""
        return self.diversity_lambda * tf.exp(-self.search_epoch / self.diversity_tau)

    # --- the search step ----------------------------------------------------------------
    @staticmethod
    def _ce(y: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
        return tf.reduce_mean(
            tf.keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
        )

    def _forward_backward(self) -> Any:
        """A nested ``tf.function``: (x, y) -> (CE, logits, gradients of CE w.r.t. every
        trainable variable). Both steps of a search step call it, so the supernet is
        traced once per search step instead of twice; the runtime inlines the calls and
        prunes what a step does not use (the weight gradients of the architecture step)."""
        fn = self.__dict__.get("_search_fb")
        if fn is None:
            variables = self.trainable_variables

            @tf.function(autograph=False)
            def fn(x: tf.Tensor, y: tf.Tensor) -> Any:
                with tf.GradientTape() as tape:
                    logits = self(x, training=True)
                    ce = self._ce(y, logits)
                return ce, logits, tape.gradient(ce, variables)

            arch = {v.ref() for v in self.arch_parameters}
            positions = {v.ref(): i for i, v in enumerate(variables)}
            self.__dict__["_search_fb"] = fn  # not a tracked attribute
            self.__dict__["_search_arch_pos"] = [positions[v.ref()] for v in self.arch_parameters]
            self.__dict__["_search_weight_pos"] = [
                i for i, v in enumerate(variables) if v.ref() not in arch
            ]
        return fn

    @tf.autograph.experimental.do_not_convert
    def train_step(self, data: Any) -> dict[str, tf.Tensor]:
        (x_train, y_train), (x_val, y_val) = data
        forward_backward = self._forward_backward()
        arch_pos, weight_pos = self._search_arch_pos, self._search_weight_pos
        variables = self.trainable_variables
        alphas = [variables[i] for i in arch_pos]
        weights = [variables[i] for i in weight_pos]

        # 1. architecture step (first order) on the validation batch
        div_weight = self.diversity_weight()
        ce, logits, grads = forward_backward(x_val, y_val)
        arch_grads = [grads[i] for i in arch_pos]
        arch_loss = ce
        if self.diversity_lambda > 0:
            with tf.GradientTape() as tape:
                regularizer = -div_weight * alpha_entropy(*alphas)
            reg_grads = tape.gradient(regularizer, alphas)
            arch_grads = [g + r for g, r in zip(arch_grads, reg_grads, strict=True)]
            arch_loss = ce + regularizer
        arch_grads = [
            g + self.arch_weight_decay * a for g, a in zip(arch_grads, alphas, strict=True)
        ]
        assert self.arch_optimizer is not None, "compile() first"
        self.arch_optimizer.apply_gradients(zip(arch_grads, alphas, strict=True))
        self.arch_loss_tracker.update_state(arch_loss)
        self.arch_ce_tracker.update_state(ce)
        self.arch_accuracy_tracker.update_state(y_val, logits)

        # 2. weight step on the training batch (with the updated alphas)
        loss, logits, grads = forward_backward(x_train, y_train)
        weight_grads = [
            grads[i] + self.weight_decay * w for i, w in zip(weight_pos, weights, strict=True)
        ]
        self.optimizer.apply_gradients(zip(weight_grads, weights, strict=True))
        self.loss_tracker.update_state(loss)
        self.accuracy_tracker.update_state(y_train, logits)

        self.entropy_tracker.update_state(alpha_entropy(*alphas))
        self.div_weight_tracker.update_state(div_weight)
        return {m.name: m.result() for m in self.metrics}

    @tf.autograph.experimental.do_not_convert
    def test_step(self, data: Any) -> dict[str, tf.Tensor]:
        if isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], tuple):
            data = data[1]  # a (train, val) pair: score the validation half
        x, y = data[0], data[1]
        logits = self(x, training=False)
        self.loss_tracker.update_state(self._ce(y, logits))
        self.accuracy_tracker.update_state(y, logits)
        return {"loss": self.loss_tracker.result(), "accuracy": self.accuracy_tracker.result()}

    def fit(
        self,
        x: Any = None,
        *args: Any,
        epochs: int = 1,
        callbacks: list[tf.keras.callbacks.Callback] | None = None,
        **kwargs: Any,
    ) -> tf.keras.callbacks.History:
        """``Model.fit`` with ``SearchEpoch`` added: the whole search loop."""
        if self.arch_optimizer is None:
            self.compile()
        callbacks = list(callbacks or [])
        if not any(isinstance(c, SearchEpoch) for c in callbacks):
            callbacks.insert(0, SearchEpoch(epochs))
        return super().fit(x, *args, epochs=epochs, callbacks=callbacks, **kwargs)
