"""Keras callbacks: ``WeightFlipCounter``, the MeliusNet optimizer study's sign-flip count.

larq's ``FlipRatio`` metric gives one mean ratio per quantizer; the MeliusNet supplement
needs, for every binary weight, how often its sign flipped between consecutive batches
during an epoch, summarised as percentiles over the weights of a layer.
"""

from __future__ import annotations

import csv
import io
import os
from typing import Any

import numpy as np
import tensorflow as tf

from larq_bnas._io import write_json, write_text
from larq_bnas.costs import has_binary_weights, leaf_layers

PERCENTILES = (50, 90, 95, 99)


class WeightFlipCounter(tf.keras.callbacks.Callback):
    """Count sign flips of every binary weight between consecutive batches, per epoch.

    At the end of each epoch it adds to the Keras logs (so ``History`` and a later
    ``TensorBoard`` callback record them) ``flips_p50``, ``flips_p90``, ``flips_p95``,
    ``flips_p99`` and ``flips_max`` over all binary weights, and the same per layer as
    ``flips/<layer>/p50`` etc.; optionally appends a row per layer to a JSON and/or CSV
    file; then resets the counts. The sign is larq's: sign(0) = +1.

    Binary kernels are those of leaf layers with a binary kernel quantizer
    (``larq_bnas.costs.has_binary_weights``); the latent (real-valued) kernel's sign is
    tracked. Counts are updated in ``on_train_batch_end`` by one ``tf.function`` over all
    kernels (with ``steps_per_execution > 1`` Keras calls it every that many steps, so the
    counts are between those calls). Place it before a ``TensorBoard`` callback in the
    list so that TensorBoard sees the logged values.

    Memory: one int8 sign and one int32 count per binary weight (5 bytes per weight).

    Args:
        json_path: file to write all epochs' percentiles to (rewritten each epoch, atomically).
        csv_path: the same as CSV (one row per epoch and layer, ``layer`` "all" first).
        per_layer: also log per-layer percentiles to the Keras logs.
        resume: keep the records already in ``json_path`` from epochs before the one
            training starts at (for a resumed run).
    """

    def __init__(
        self,
        json_path: str | os.PathLike | None = None,
        csv_path: str | os.PathLike | None = None,
        per_layer: bool = True,
        resume: bool = False,
    ) -> None:
        super().__init__()
        self.json_path, self.csv_path, self.per_layer = json_path, csv_path, per_layer
        self.resume = resume
        self.records: list[dict[str, Any]] = []
        self._kernels: list[tuple[str, tf.Variable]] = []
        self._first_epoch: int | None = None

    def _find_kernels(self) -> list[tuple[str, tf.Variable]]:
        found = []
        for path, layer in leaf_layers(self.model):
            if has_binary_weights(layer):
                kernel = getattr(layer, "kernel", None)
                if kernel is None:
                    kernel = getattr(layer, "depthwise_kernel", None)
                if kernel is not None:
                    found.append((path, getattr(kernel, "latent_variable", kernel)))
        return found

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._first_epoch = None
        if self.resume and self.json_path is not None and os.path.exists(self.json_path):
            from larq_bnas._io import read_json

            self.records = list(read_json(self.json_path))
        self._kernels = self._find_kernels()
        self._signs = [
            tf.Variable(self._sign(k), trainable=False, dtype=tf.int8) for _, k in self._kernels
        ]
        self._counts = [
            tf.Variable(tf.zeros(k.shape, tf.int32), trainable=False) for _, k in self._kernels
        ]
        self._update = tf.function(self._update_all)

    @staticmethod
    def _sign(kernel: tf.Variable) -> tf.Tensor:
        return tf.where(
            tf.convert_to_tensor(kernel) >= 0, tf.constant(1, tf.int8), tf.constant(-1, tf.int8)
        )

    def _update_all(self) -> None:
        for (_, kernel), sign, count in zip(self._kernels, self._signs, self._counts, strict=True):
            new = self._sign(kernel)
            count.assign_add(tf.cast(tf.not_equal(new, sign), tf.int32))
            sign.assign(new)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self._kernels:
            self._update()

    def counts(self) -> dict[str, np.ndarray]:
        """The current epoch's per-weight flip counts, by layer path."""
        return {name: c.numpy() for (name, _), c in zip(self._kernels, self._counts, strict=True)}

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        if self._first_epoch is None:  # drop records of epochs that will be redone
            self._first_epoch = epoch
            self.records = [r for r in self.records if r["epoch"] <= epoch]

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if not self._kernels:
            return
        logs = logs if logs is not None else {}
        counts = self.counts()
        everything = np.concatenate([c.ravel() for c in counts.values()])
        summary = _percentiles(everything)
        for key, value in summary.items():
            logs[f"flips_{key}"] = value
        rows = [{"epoch": epoch + 1, "layer": "all", **summary}]
        for name, c in counts.items():
            layer_summary = _percentiles(c.ravel())
            rows.append({"epoch": epoch + 1, "layer": name, **layer_summary})
            if self.per_layer:
                for key, value in layer_summary.items():
                    logs[f"flips/{name}/{key}"] = value
        self.records += rows
        self._write()
        for c in self._counts:
            c.assign(tf.zeros_like(c))

    def _write(self) -> None:
        if self.json_path is not None:
            write_json(self.json_path, self.records)
        if self.csv_path is not None:
            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, fieldnames=list(self.records[0]))
            writer.writeheader()
            writer.writerows(self.records)
            write_text(self.csv_path, buffer.getvalue())


def _percentiles(values: np.ndarray) -> dict[str, float]:
    out = {f"p{p}": float(np.percentile(values, p)) for p in PERCENTILES}
    out["max"] = float(values.max()) if values.size else 0.0
    return out
