"""The training job: ``train(...)`` fits a model with a recipe into an output directory.

The directory holds, after every epoch (atomically): ``checkpoint/`` (model + optimizer,
for ``resume=True``), ``history.json``, ``train.log``, ``best.weights.h5`` (best test
accuracy so far); and at the end ``final.weights.h5``, ``results.json`` (test top-1 /
top-5, size, OPs, wall time) and ``curves.png``. ``evaluate(...)`` scores any model.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import tensorflow as tf

from larq_bnas import data
from larq_bnas._io import atomic_path, read_json, write_json
from larq_bnas.checkpointing import RunDirectory
from larq_bnas.training.distribute import get_strategy, is_chief
from larq_bnas.training.recipes import get_recipe

#: Defaults that make the embedded dataset train well in minutes on 2 CPU cores.
DIGITS_DEFAULTS = {"recipe": "digits", "epochs": 12, "batch_size": 64, "input_size": 16}


def _test_split(dataset: str) -> str:
    return "validation" if dataset.startswith("imagenet") else "test"


def _build(model: Any, input_size: int | None, num_classes: int, weights: str | None,
           options: dict[str, Any]) -> tf.keras.Model:
    if isinstance(model, tf.keras.Model):
        if weights:
            model.load_weights(weights)
        return model
    from larq_bnas.zoo.references import is_saved_model, load_model

    kwargs: dict[str, Any] = dict(options)
    if not is_saved_model(str(model)):
        kwargs["num_classes"] = num_classes
        if input_size is not None:
            kwargs["input_shape"] = (input_size, input_size, 3)
    return load_model(str(model), weights=weights, **kwargs)


class _BestWeights(tf.keras.callbacks.Callback):
    """Save the weights with the best ``monitor`` so far, atomically."""

    def __init__(self, path: Path, monitor: str = "val_accuracy", best: float = -1.0) -> None:
        super().__init__()
        self.path, self.monitor, self.best = path, monitor, best

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        value = (logs or {}).get(self.monitor)
        if value is not None and value > self.best:
            self.best = float(value)
            save_weights(self.model, self.path)


class _TextLog(tf.keras.callbacks.Callback):
    """One human-readable line per epoch, appended to ``train.log``."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self._start = time.time()

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._start = time.time()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        parts = [f"epoch {epoch + 1}", f"{time.time() - self._start:.1f}s"]
        parts += [f"{k}={v:.4g}" for k, v in (logs or {}).items()
                  if isinstance(v, (int, float)) and "/" not in k]
        with open(self.path, "a", encoding="utf-8") as f:  # append-only log
            f.write("  ".join(parts) + "\n")


def save_weights(model: tf.keras.Model, path: str | os.PathLike) -> Path:
    """``model.save_weights`` to an .h5 file, atomically."""
    with atomic_path(path) as tmp:
        model.save_weights(str(tmp))
    return Path(path)


def evaluate(
    model: Any,
    *,
    dataset: str = "digits",
    split: str | None = None,
    weights: str | None = None,
    input_size: int | None = None,
    batch_size: int = 64,
    data_dir: str | None = None,
    options: dict[str, Any] | None = None,
) -> dict[str, float]:
    """Top-1 and top-5 accuracy (and loss) of ``model`` on a dataset split."""
    if weights is not None and not os.path.exists(weights):
        raise FileNotFoundError(f"Weights file {weights!r} does not exist")
    if dataset == "digits" and input_size is None and not isinstance(model, tf.keras.Model):
        input_size = DIGITS_DEFAULTS["input_size"]
    meta = data.info(dataset, data_dir)
    keras_model = _build(model, input_size, meta.num_classes, weights, options or {})
    size = keras_model.input_shape[1]
    ds = data.load(dataset, split or _test_split(dataset), input_size=size,
                   batch_size=batch_size, data_dir=data_dir)
    keras_model.compile(
        loss="sparse_categorical_crossentropy",
        metrics=[tf.keras.metrics.SparseCategoricalAccuracy(name="top1"),
                 tf.keras.metrics.SparseTopKCategoricalAccuracy(k=5, name="top5")],
    )
    result = keras_model.evaluate(ds, verbose=0, return_dict=True)
    return {k: float(v) for k, v in result.items()}


def train(
    model: Any,
    *,
    output_dir: str | os.PathLike,
    dataset: str = "digits",
    recipe: str | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    input_size: int | None = None,
    weights: str | None = None,
    resume: bool = False,
    data_dir: str | None = None,
    options: dict[str, Any] | None = None,
    strategy: str = "auto",
    flip_stats: bool = False,
    tensorboard: bool = True,
    jit_compile: bool = False,
    seed: int = 0,
    verbose: int | str = "auto",
    extra_callbacks: list[tf.keras.callbacks.Callback] | None = None,
) -> dict[str, Any]:
    """Train ``model`` (a zoo name, genotype JSON, saved model, ``lqz:NAME`` or a Keras
    model) on ``dataset`` with ``recipe`` into ``output_dir``; return the results dict.

    With ``resume=True`` an interrupted run continues from its last finished epoch and
    ends with the same number of epochs; a finished run returns its results unchanged.
    """
    digits = dataset == "digits"
    recipe_name = recipe or (DIGITS_DEFAULTS["recipe"] if digits else "bnas-cifar")
    the_recipe = get_recipe(recipe_name)
    epochs = int(epochs or (DIGITS_DEFAULTS["epochs"] if digits else the_recipe.default_epochs))
    batch_size = int(batch_size or (DIGITS_DEFAULTS["batch_size"] if digits
                                    else the_recipe.default_batch_size))
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch size must be positive, got {epochs} and {batch_size}")
    if input_size is None and digits and not isinstance(model, tf.keras.Model):
        input_size = DIGITS_DEFAULTS["input_size"]
    if weights is not None and not os.path.exists(weights) and not os.path.exists(
        f"{weights}.index"
    ):
        raise FileNotFoundError(f"Weights file {weights!r} does not exist")
    meta = data.info(dataset, data_dir)  # fails early, clearly, when the data is missing

    distribution = get_strategy(strategy)
    chief = is_chief(distribution)
    out = Path(output_dir) if chief else Path(output_dir) / f".worker{_task_id()}"
    record = {
        "model": model if isinstance(model, str) else getattr(model, "name", "model"),
        "dataset": dataset, "recipe": recipe_name, "epochs": epochs, "batch_size": batch_size,
        "input_size": input_size, "options": options or {}, "weights": weights,
    }
    run = RunDirectory(out, "train", record, resume=resume)
    if run.finished and (out / "results.json").exists():
        return read_json(out / "results.json")

    tf.keras.utils.set_random_seed(seed)
    with distribution.scope():
        keras_model = _build(model, input_size, meta.num_classes, weights, options or {})
        size = keras_model.input_shape[1]
        n_train = data.num_examples(dataset, "train", data_dir)
        steps = max(n_train // batch_size, 1)
        the_recipe.compile(keras_model, epochs=epochs, steps_per_epoch=steps,
                           jit_compile=jit_compile)
    train_ds = data.load(dataset, "train", input_size=size, batch_size=batch_size,
                         seed=seed, data_dir=data_dir, drop_remainder=True)
    test_ds = data.load(dataset, _test_split(dataset), input_size=size, batch_size=batch_size,
                        data_dir=data_dir)

    best_so_far = max([e.get("val_accuracy", -1.0) for e in run.history()], default=-1.0)
    callbacks: list[tf.keras.callbacks.Callback] = [
        *the_recipe.callbacks(epochs=epochs, steps_per_epoch=steps,
                              optimizer=keras_model.optimizer),
    ]
    if flip_stats:
        from larq_bnas.callbacks import WeightFlipCounter

        callbacks.append(WeightFlipCounter(json_path=out / "flips.json",
                                           csv_path=out / "flips.csv", per_layer=False))
    callbacks += [
        _BestWeights(out / "best.weights.h5", best=best_so_far),
        _TextLog(out / "train.log"),
        *run.fit_callbacks(),
        *(extra_callbacks or []),
    ]
    if tensorboard and chief:
        callbacks.append(tf.keras.callbacks.TensorBoard(str(out / "tensorboard"),
                                                        write_graph=False))
    start = time.time()
    keras_model.fit(train_ds, validation_data=test_ds, epochs=epochs, callbacks=callbacks,
                    verbose=verbose)
    wall = time.time() - start

    final = keras_model.evaluate(test_ds, verbose=0, return_dict=True)
    save_weights(keras_model, out / "final.weights.h5")
    from larq_bnas.costs import model_costs

    costs = model_costs(keras_model)
    results = {
        **record,
        "test_top1": float(final["accuracy"]),
        "test_top5": float(final["top5"]),
        "test_loss": float(final["loss"]),
        "best_test_top1": max(best_so_far, max(
            [e.get("val_accuracy", -1.0) for e in run.history()], default=-1.0)),
        "trainable_params": costs.trainable_params,
        "size_mib": costs.size_mib,
        "ops": costs.ops,
        "input_size": size,
        "train_seconds_this_session": wall,
        "model_name": keras_model.name,
    }
    write_json(out / "results.json", results)
    if chief:
        from larq_bnas.training.plots import plot_curves

        plot_curves(run.history(), out / "curves.png",
                    label=f"{keras_model.name}: {costs.size_mib:.2f} MiB, "
                          f"{costs.ops / 1e6:.1f} M OPs")
    run.mark_finished(test_top1=results["test_top1"])
    return results


def _task_id() -> int:
    import json

    config = json.loads(os.environ.get("TF_CONFIG", "{}"))
    return int(config.get("task", {}).get("index", 0))
