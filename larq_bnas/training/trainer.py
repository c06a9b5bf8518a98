"""The training job: ``train(...)`` fits a model with a recipe into an output directory.

The directory holds, after every epoch (atomically): ``checkpoint/`` (model + optimizer,
for ``resume=True``), ``history.json`` (one entry of logs per epoch), ``state.json``,
``train.log`` (one line per epoch) and ``best.weights.h5`` (best test accuracy so far);
and at the end ``final.weights.h5``, ``model.h5`` (the whole trained model, loadable as
MODEL by every command), ``results.json`` (test top-1 / top-5, size, OPs, wall time) and
``curves.png`` (accuracy curves and the learning-rate schedule, the legend naming the
model's size and OPs). ``evaluate(...)`` scores any model on a dataset split.

In a multi-worker run (``strategy="multiworker"``) every worker runs this function with
the same arguments; worker 0 (or the chief) writes the files above, the others keep their
own records in ``OUTPUT/.worker<i>/``. The output directory must be on a file system all
workers share for ``resume`` to work (Keras restores every worker from the chief's
checkpoint).
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from larq_bnas._autograph import lean_autograph
from larq_bnas._digits import DIGITS
from larq_bnas._io import atomic_path, read_json, write_json
from larq_bnas.checkpointing import RunDirectory
from larq_bnas.errors import InputError
from larq_bnas.training import data
from larq_bnas.training.distribute import get_strategy, is_chief, tf_config
from larq_bnas.training.memory import lean_graphs, recompute_binary_ops
from larq_bnas.training.recipes import get_recipe
from larq_bnas.training.schedules import schedule_of

#: Defaults that make the embedded dataset train well in minutes on 2 CPU cores
#: (``data.DIGITS``, as a dict).
DIGITS_DEFAULTS: dict[str, Any] = {
    "recipe": DIGITS.recipe,
    "epochs": DIGITS.epochs,
    "batch_size": DIGITS.batch_size,
    "input_size": DIGITS.input_size,
}


def _build(
    model: Any,
    input_size: int | None,
    num_classes: int,
    weights: str | None,
    options: dict[str, Any],
    trust_model_code: bool = False,
) -> tf.keras.Model:
    if isinstance(model, tf.keras.Model):
        if weights:
            model.load_weights(weights)
        keras_model = model
    else:
        from larq_bnas.zoo.references import is_saved_model, load_model

        kwargs: dict[str, Any] = dict(options)
        if not is_saved_model(str(model)):
            kwargs["num_classes"] = num_classes
            if input_size is not None:
                kwargs["input_shape"] = (input_size, input_size, 3)
        keras_model = load_model(
            str(model), weights=weights, trust_model_code=trust_model_code, **kwargs
        )
    outputs = keras_model.output_shape[-1]
    if outputs != num_classes:
        raise InputError(
            f"The model has {outputs} outputs but the dataset has {num_classes} classes; "
            "build it for this dataset (a zoo name or genotype file adapts automatically)"
        )
    return keras_model


def _check_weights(weights: str | None) -> None:
    if weights is None:
        return
    if not (os.path.exists(weights) or os.path.exists(f"{weights}.index")):
        raise InputError(
            f"Weights file {weights!r} does not exist; give an .h5 weights file or a "
            "TensorFlow checkpoint prefix"
        )
    from larq_bnas.zoo.references import check_weights_file

    check_weights_file(weights)


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
    """Human-readable ``train.log``: a header per session and one line per epoch."""

    def __init__(self, path: Path, header: str) -> None:
        super().__init__()
        self.path, self.header = path, header
        self._start = time.time()

    def _append(self, line: str) -> None:
        with open(self.path, "a", encoding="utf-8") as f:  # append-only log
            f.write(line + "\n")

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._append(f"# {time.strftime('%Y-%m-%d %H:%M:%S')} {self.header}")

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._start = time.time()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        seconds = time.time() - self._start
        if logs is not None:
            logs["epoch_seconds"] = seconds  # recorded in history.json too
        parts = [f"epoch {epoch + 1}", f"{seconds:.1f}s"]
        parts += [
            f"{k}={v:.4g}"
            for k, v in (logs or {}).items()
            if isinstance(v, (int, float, np.floating)) and "/" not in k and k != "epoch_seconds"
        ]
        self._append("  ".join(parts))


def save_weights(model: tf.keras.Model, path: str | os.PathLike) -> Path:
    """``model.save_weights`` to an .h5 file, atomically."""
    with atomic_path(path) as tmp:
        model.save_weights(str(tmp))
    return Path(path)


def _save_model(model: tf.keras.Model, path: Path) -> bool:
    """The whole model as .h5 (architecture + weights), atomically; False if it cannot be
    serialised (e.g. a model subclass without a config)."""
    import warnings

    try:
        with atomic_path(path) as tmp, warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*HDF5 file.*legacy")
            model.save(str(tmp), include_optimizer=False, save_format="h5")
    except (NotImplementedError, TypeError, ValueError) as error:
        tf.get_logger().warning("Not saving the whole model to %s: %s", path, error)
        return False
    return True


def _metrics() -> list[tf.keras.metrics.Metric]:
    return [
        tf.keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
        tf.keras.metrics.SparseTopKCategoricalAccuracy(k=5, name="top5"),
    ]


def evaluate(
    model: Any,
    *,
    dataset: str = DIGITS.name,
    split: str | None = None,
    weights: str | None = None,
    input_size: int | None = None,
    batch_size: int = DIGITS.batch_size,
    data_dir: str | None = None,
    options: dict[str, Any] | None = None,
    trust_model_code: bool = False,
) -> dict[str, float]:
    """Top-1 (``top1``) and top-5 (``top5``) accuracy and the loss of ``model`` (anything
    ``train`` accepts) with ``weights`` on ``split`` of ``dataset`` (default: its test
    split, or validation for ImageNet), preprocessed as for evaluation."""
    _check_weights(weights)
    if batch_size < 1:
        raise InputError(f"batch size must be positive, got {batch_size}")
    if dataset == DIGITS.name and input_size is None and not isinstance(model, tf.keras.Model):
        input_size = DIGITS.input_size
    meta = data.info(dataset, data_dir)
    keras_model = _build(
        model, input_size, meta.num_classes, weights, options or {}, trust_model_code
    )
    size = keras_model.input_shape[1]
    split = split or data.eval_split(dataset, data_dir)
    ds = data.load(dataset, split, input_size=size, batch_size=batch_size, data_dir=data_dir)
    keras_model.compile(loss="sparse_categorical_crossentropy", metrics=_metrics())
    with lean_autograph():
        result = keras_model.evaluate(ds, verbose=0, return_dict=True)
    return {
        "top1": float(result["accuracy"]),
        "top5": float(result["top5"]),
        "loss": float(result["loss"]),
        "examples": data.num_examples(dataset, split, data_dir),
    }


def _lr_curve(
    optimizer: tf.keras.optimizers.Optimizer, epochs: int, steps: int
) -> list[tuple[float, float]] | None:
    """The learning rate over training as (epoch, lr) points, from the schedule."""
    schedule = schedule_of(optimizer)
    if schedule is None:
        return None
    total = epochs * steps
    points = np.unique(np.linspace(0, max(total - 1, 0), num=min(total, 400)).astype(int))
    values = schedule(tf.constant(points, tf.float32)).numpy()
    return [(float(p) / steps, float(v)) for p, v in zip(points, values, strict=True)]


#: The options of a training run that change its results: ``resume=True`` refuses others.
RESULT_KEYS = (
    "model",
    "dataset",
    "recipe",
    "epochs",
    "batch_size",
    "input_size",
    "options",
    "weights",
    "seed",
)
#: Files that belong to an epoch's state: committed with its checkpoint (``RunDirectory``).
EPOCH_FILES = ("best.weights.h5", "flips.json", "flips.csv")


@dataclass
class _Job:
    """What one ``train`` call works with, filled in step by step."""

    model: Any
    dataset: str
    recipe: Any
    recipe_name: str
    epochs: int
    batch_size: int
    input_size: int | None
    data_dir: str | None
    options: dict[str, Any]
    seed: int
    num_classes: int = 0
    n_train: int = 0
    steps: int = 0
    test_split: str = "test"
    out: Path = Path(".")
    root: Path = Path(".")
    chief: bool = True
    record: dict[str, Any] = field(default_factory=dict)


def _settings(
    model: Any,
    dataset: str,
    recipe: str | None,
    epochs: int | None,
    batch_size: int | None,
    input_size: int | None,
    data_dir: str | None,
    options: dict[str, Any] | None,
    seed: int,
) -> _Job:
    """Step 1: the recipe, epochs, batch size and input size, with their defaults."""
    digits = dataset == DIGITS.name
    recipe_name = recipe or (DIGITS.recipe if digits else "bnas-cifar")
    the_recipe = get_recipe(recipe_name)
    epochs = int(epochs or (DIGITS.epochs if digits else the_recipe.default_epochs))
    batch_size = int(batch_size or (DIGITS.batch_size if digits else the_recipe.default_batch_size))
    if epochs < 1:
        raise InputError(f"epochs must be positive, got {epochs}")
    if batch_size < 1:
        raise InputError(f"batch size must be positive, got {batch_size}")
    if input_size is None and digits and not isinstance(model, tf.keras.Model):
        input_size = DIGITS.input_size
    return _Job(
        model,
        dataset,
        the_recipe,
        recipe_name,
        epochs,
        batch_size,
        input_size,
        data_dir,
        dict(options or {}),
        seed,
    )


def _check_data(job: _Job) -> None:
    """Step 2: the dataset exists and holds at least one batch (fails early, clearly)."""
    meta = data.info(job.dataset, job.data_dir)
    job.num_classes = meta.num_classes
    job.n_train = data.num_examples(job.dataset, "train", job.data_dir)
    if job.batch_size > job.n_train:
        raise InputError(
            f"batch size {job.batch_size} is larger than the {job.n_train} training examples "
            f"of {job.dataset!r}"
        )
    job.steps = job.n_train // job.batch_size
    job.test_split = data.eval_split(job.dataset, job.data_dir)


def _record(job: _Job, weights: str | None, strategy: str, replicas: int) -> dict[str, Any]:
    """The options recorded in state.json and results.json."""
    model = job.model
    return {
        "model": model if isinstance(model, str) else getattr(model, "name", "model"),
        "dataset": job.dataset,
        "recipe": job.recipe_name,
        "epochs": job.epochs,
        "batch_size": job.batch_size,
        "input_size": job.input_size,
        "options": job.options,
        "weights": weights,
        "seed": job.seed,
        "strategy": strategy,
        "workers": replicas,
    }


def _open_run(job: _Job, resume: bool) -> RunDirectory:
    """Step 3: the run directory (refused if it holds a run with other options)."""
    return RunDirectory(
        job.out,
        "train",
        job.record,
        resume=resume,
        result_keys=RESULT_KEYS,
        snapshot_files=EPOCH_FILES,
    )


def _compile(
    job: _Job, weights: str | None, lean_memory: bool, jit_compile: bool, trust: bool = False
) -> tf.keras.Model:
    """Step 4: the model, built for the dataset and compiled with the recipe."""
    tf.keras.utils.set_random_seed(job.seed)
    keras_model = _build(job.model, job.input_size, job.num_classes, weights, job.options, trust)
    if lean_memory:
        recompute_binary_ops(keras_model)
    job.recipe.compile(
        keras_model, epochs=job.epochs, steps_per_epoch=job.steps, jit_compile=jit_compile
    )
    return keras_model


def _datasets(job: _Job, size: int) -> tuple[tf.data.Dataset, tf.data.Dataset]:
    """Step 5: the training batches (shuffled by ``seed``) and the test batches."""
    train_ds = data.load(
        job.dataset,
        "train",
        input_size=size,
        batch_size=job.batch_size,
        seed=job.seed,
        data_dir=job.data_dir,
        drop_remainder=True,
    )
    test_ds = data.load(
        job.dataset,
        job.test_split,
        input_size=size,
        batch_size=job.batch_size,
        data_dir=job.data_dir,
    )
    return train_ds, test_ds


def _callbacks(
    job: _Job,
    run: RunDirectory,
    keras_model: tf.keras.Model,
    resume: bool,
    flip_stats: bool,
    tensorboard: bool,
    extra_callbacks: list[tf.keras.callbacks.Callback] | None,
) -> list[tf.keras.callbacks.Callback]:
    """Step 6: the recipe's callbacks, the per-epoch files, and the epoch commit last."""
    history = run.history()
    best_so_far = max([e.get("val_accuracy", -1.0) for e in history], default=-1.0)
    callbacks: list[tf.keras.callbacks.Callback] = [
        *job.recipe.callbacks(
            epochs=job.epochs, steps_per_epoch=job.steps, optimizer=keras_model.optimizer
        ),
    ]
    if flip_stats:
        from larq_bnas.training.callbacks import WeightFlipCounter

        callbacks.append(
            WeightFlipCounter(
                json_path=job.out / "flips.json",
                csv_path=job.out / "flips.csv",
                per_layer=False,
                resume=resume,
            )
        )
    header = (
        f"{job.record['model']} on {job.dataset} ({job.recipe_name}, {job.epochs} epochs, "
        f"batch {job.batch_size}, {job.steps} steps/epoch, {job.record['workers']} replica(s))"
        + (f", resuming after epoch {run.epochs_done}" if history else "")
    )
    if tensorboard and job.chief:
        callbacks.append(
            tf.keras.callbacks.TensorBoard(str(job.out / "tensorboard"), write_graph=False)
        )
    return [
        *callbacks,
        _BestWeights(job.out / "best.weights.h5", best=best_so_far),
        _TextLog(job.out / "train.log", header),
        *(extra_callbacks or []),
        # Last: commits the files above with the checkpoint. Every worker restores from
        # the chief's commit (Keras' multi-worker rule).
        *run.fit_callbacks(restore_from=job.root),
    ]


def _create_optimizer_variables(keras_model: tf.keras.Model) -> None:
    """Create the optimizer's slot variables before ``fit``. Left to the first train step,
    their creation makes TensorFlow trace the whole step twice (a 3-cell BNAS-Mini at 8 px,
    2 epochs on the digits: 9.4 s of CPU with the second trace, 7.4 s without, the same
    final weights bit for bit). Legacy optimizers create theirs in the step and keep the
    second trace."""
    optimizer = keras_model.optimizer
    if isinstance(optimizer, tf.keras.optimizers.Optimizer) and not getattr(
        optimizer, "_built", False
    ):
        optimizer.build(keras_model.trainable_variables)


def _fit(
    job: _Job,
    keras_model: tf.keras.Model,
    train_ds: tf.data.Dataset,
    test_ds: tf.data.Dataset,
    callbacks: list[tf.keras.callbacks.Callback],
    lean_memory: bool,
    verbose: int | str,
) -> tuple[float, dict[str, float]]:
    """Step 7: ``fit`` (from the last committed epoch), then the final test scores."""
    start = time.time()
    _create_optimizer_variables(keras_model)
    with lean_autograph(), lean_graphs() if lean_memory else contextlib.nullcontext():
        keras_model.fit(
            train_ds,
            validation_data=test_ds,
            epochs=job.epochs,
            callbacks=callbacks,
            verbose=verbose,
        )
        wall = time.time() - start
        final = keras_model.evaluate(test_ds, verbose=0, return_dict=True)
    return wall, final


def _finish(
    job: _Job,
    run: RunDirectory,
    keras_model: tf.keras.Model,
    wall: float,
    final: dict[str, float],
) -> dict[str, Any]:
    """Step 8: final weights, the whole model, results.json and curves.png."""
    save_weights(keras_model, job.out / "final.weights.h5")
    saved_model = _save_model(keras_model, job.out / "model.h5")
    from larq_bnas.costs import model_costs

    costs = model_costs(keras_model)
    history = run.history()
    results = {
        **job.record,
        "input_size": keras_model.input_shape[1],
        "model_name": keras_model.name,
        "test_split": job.test_split,
        "test_top1": float(final["accuracy"]),
        "test_top5": float(final["top5"]),
        "test_loss": float(final["loss"]),
        "best_test_top1": max([e.get("val_accuracy", -1.0) for e in history], default=-1.0),
        "trainable_params": costs.trainable_params,
        "binary_params": costs.binary_params,
        "size_mib": costs.size_mib,
        "ops": costs.ops,
        "train_seconds_this_session": wall,
        "train_seconds_total": sum(e.get("epoch_seconds", 0.0) for e in history) or wall,
        "files": {
            "best": "best.weights.h5",
            "final": "final.weights.h5",
            **({"model": "model.h5"} if saved_model else {}),
        },
    }
    write_json(job.out / "results.json", results)
    if job.chief:
        from larq_bnas.training.plots import plot_curves

        plot_curves(
            history,
            job.out / "curves.png",
            label=f"{keras_model.name}: {costs.size_mib:.2f} MiB, {costs.ops / 1e6:.2f} M OPs",
            lr_curve=_lr_curve(keras_model.optimizer, job.epochs, job.steps),
        )
    run.mark_finished(test_top1=results["test_top1"], test_top5=results["test_top5"])
    return results


def train(
    model: Any,
    *,
    output_dir: str | os.PathLike,
    dataset: str = DIGITS.name,
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
    lean_memory: bool = True,
    seed: int = 0,
    verbose: int | str = "auto",
    extra_callbacks: list[tf.keras.callbacks.Callback] | None = None,
    trust_model_code: bool = False,
) -> dict[str, Any]:
    """Train ``model`` on ``dataset`` with ``recipe`` into ``output_dir``; return the
    results (also in ``results.json``).

    Args:
        model: a zoo name, genotype JSON, saved model, ``lqz:NAME`` (built for the
            dataset's classes and ``input_size``) or a Keras model.
        output_dir: the run directory (see the module docstring).
        dataset: ``digits`` (default), a tfds name or ``folder:PATH`` (``larq_bnas.training.data``).
        recipe: a name from ``larq_bnas.training.RECIPES`` (default ``digits`` on the
            digits, else ``bnas-cifar``).
        epochs, batch_size: default the digits defaults or the recipe's (the papers').
        input_size: square input size (default: 16 on the digits, else the model's).
        weights: initial weights.
        resume: continue the interrupted run in ``output_dir`` from its last committed
            epoch; it ends with the same number of epochs; a finished run returns its
            results unchanged. The options in ``RESULT_KEYS`` must be the recorded ones
            (``OptionsMismatch`` lists the differences).
        data_dir: where tfds sets are prepared.
        options: model options (``cells``, ``channels``, ``--set`` keys).
        strategy: ``auto``, ``none``, ``mirrored`` or ``multiworker`` (``distribute``).
        flip_stats: log sign-flip percentiles of the binary weights per epoch
            (``WeightFlipCounter``; ``flips.json`` and ``flips.csv``).
        tensorboard: write TensorBoard logs to ``tensorboard/``.
        jit_compile: compile the train step with XLA (slower for these models on CPU:
            see ``benchmarks/train_step.py``).
        lean_memory: recompute the binary operations' intermediates in the backward pass
            and build graphs without constant folding (``larq_bnas.training.memory``):
            about half the memory, same gradients. (Graphs are always built with
            AutoGraph leaving tf-keras and larq code unconverted: ``lean_autograph``.)
        seed: seed of the initialisation and the data order.
        verbose: Keras ``fit`` verbosity.
        extra_callbacks: more Keras callbacks (they run before the epoch commit).
        trust_model_code: load a saved model that carries code (Lambda layers).
    """
    job = _settings(model, dataset, recipe, epochs, batch_size, input_size, data_dir, options, seed)
    _check_weights(weights)
    _check_data(job)

    distribution = get_strategy(strategy)
    job.chief = is_chief(distribution)
    job.root = Path(output_dir)
    job.out = job.root if job.chief else job.root / f".worker{tf_config().task_index}"
    job.record = _record(job, weights, strategy, distribution.num_replicas_in_sync)
    if resume or (job.out / "state.json").exists():  # refuse (or reopen) an existing run early
        previous = _open_run(job, resume)
        if previous.finished and (job.out / "results.json").exists():
            return read_json(job.out / "results.json")

    with distribution.scope():  # build before writing anything: bad options fail cleanly
        keras_model = _compile(job, weights, lean_memory, jit_compile, trust_model_code)
    run = _open_run(job, resume)
    train_ds, test_ds = _datasets(job, keras_model.input_shape[1])
    callbacks = _callbacks(job, run, keras_model, resume, flip_stats, tensorboard, extra_callbacks)
    wall, final = _fit(job, keras_model, train_ds, test_ds, callbacks, lean_memory, verbose)
    return _finish(job, run, keras_model, wall, final)
