"""Optimizers the papers use that tf-keras lacks: RAdam (MeliusNet's choice)."""

from __future__ import annotations

from typing import Any

import tensorflow as tf


@tf.keras.utils.register_keras_serializable(package="larq_bnas")
class RAdam(tf.keras.optimizers.Adam):
    """Rectified Adam (Liu et al., 2020), as used for MeliusNet.

    While the variance of the adaptive learning rate is intractable (rho_t <= 5, the first
    few steps), the update is plain momentum SGD on the bias-corrected first moment; after
    that it is Adam scaled by the rectification term r_t.
    """

    def __init__(
        self,
        learning_rate: Any = 0.002,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        name: str = "RAdam",
        **kwargs: Any,
    ) -> None:
        super().__init__(
            learning_rate=learning_rate,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            name=name,
            **kwargs,
        )

    def update_step(self, gradient: tf.Tensor, variable: tf.Variable) -> None:
        dtype = variable.dtype
        lr = tf.cast(self.learning_rate, dtype)
        step = tf.cast(self.iterations + 1, dtype)
        beta_1 = tf.cast(self.beta_1, dtype)
        beta_2 = tf.cast(self.beta_2, dtype)
        beta_1_power = tf.pow(beta_1, step)
        beta_2_power = tf.pow(beta_2, step)
        key = self._var_key(variable)
        m = self._momentums[self._index_dict[key]]
        v = self._velocities[self._index_dict[key]]
        gradient = tf.convert_to_tensor(gradient)
        m.assign_add((gradient - m) * (1 - beta_1))
        v.assign_add((tf.square(gradient) - v) * (1 - beta_2))
        m_hat = m / (1 - beta_1_power)
        rho_inf = 2 / (1 - beta_2) - 1
        rho_t = rho_inf - 2 * step * beta_2_power / (1 - beta_2_power)
        rect = tf.sqrt(
            tf.maximum((rho_t - 4) * (rho_t - 2) * rho_inf, 0.0)
            / ((rho_inf - 4) * (rho_inf - 2) * tf.maximum(rho_t, 1e-8))
        )
        v_hat = tf.sqrt(v / (1 - beta_2_power))
        adaptive = rect * m_hat / (v_hat + self.epsilon)
        variable.assign_sub(lr * tf.where(rho_t > 5.0, adaptive, m_hat))
