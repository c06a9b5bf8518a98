"""Fit a zoo model from your own code: your optimizer, your tf.data, plain model.fit,
with the sign-flip counter of the MeliusNet optimizer study attached.

    python examples/fit_zoo_model.py            # BNAS-Mini on the embedded digits
    python examples/fit_zoo_model.py --tiny     # a few seconds (what the tests run)
    LARQ_BNAS_EXAMPLE_TINY=1 python examples/fit_zoo_model.py   # the same
"""

from __future__ import annotations

import argparse
import os

import tensorflow as tf
from sklearn.datasets import load_digits

import larq_bnas.zoo as zoo  # importing larq_bnas selects legacy Keras for larq
from larq_bnas.training.callbacks import WeightFlipCounter
from larq_bnas.training.data import DIGITS


def my_dataset(size: int, batch_size: int) -> tuple[tf.data.Dataset, tf.data.Dataset]:
    """Your own pipeline: here scikit-learn's digits, scaled, resized, 3 channels."""
    digits = load_digits()
    images = tf.image.resize(digits.images[..., None] / 16.0, (size, size))
    images = tf.repeat((images - DIGITS.mean[0]) / DIGITS.std[0], 3, axis=-1)
    labels = digits.target
    n = DIGITS.splits["train"]
    train = tf.data.Dataset.from_tensor_slices((images[:n], labels[:n]))
    test = tf.data.Dataset.from_tensor_slices((images[n:], labels[n:]))
    return train.shuffle(n, seed=0).batch(batch_size), test.batch(batch_size)


def main(tiny: bool = False) -> dict[str, float]:
    options = {"cells": 3, "channels": 4} if tiny else {}
    size = DIGITS.input_size
    model = zoo.BNASMini(input_shape=(size, size, 3), num_classes=DIGITS.num_classes, **options)
    model.compile(
        optimizer=tf.keras.optimizers.Adam(learning_rate=2e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    train, test = my_dataset(size, DIGITS.batch_size)
    flips = WeightFlipCounter(per_layer=False)
    history = model.fit(
        train, validation_data=test, epochs=3 if tiny else 8, callbacks=[flips], verbose=2
    )
    result = {
        "test_accuracy": float(history.history["val_accuracy"][-1]),
        "flips_p95_last_epoch": float(history.history["flips_p95"][-1]),
        "flips_max_last_epoch": float(history.history["flips_max"][-1]),
    }
    print(result)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true")
    main(parser.parse_args().tiny or bool(os.environ.get("LARQ_BNAS_EXAMPLE_TINY")))
