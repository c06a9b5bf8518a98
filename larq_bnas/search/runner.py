"""The search job: ``run_search(output_dir, ...)`` runs a BNAS cell search into a directory.

Data (paper 5.1): the training split is halved; the first half trains the supernet's
weights, the second half the architecture parameters (``train[:50%]`` / ``train[50%:]``).
Each search step takes one batch of each half.

The output directory holds, updated after every epoch (atomically):

- ``checkpoint/``, ``history.json``, ``state.json`` (``RunDirectory``: ``resume=True``
  continues a killed search, losing at most the epoch in progress);
- ``alphas.json``: the alpha history (``epochs``, ``layer_set``, ``alpha_normal`` and
  ``alpha_reduce`` of shape epochs x 14 x K; epoch 0 is the initialisation);
- ``alphas_final.json``: the latest alphas (``larq_bnas derive`` reads it);
- ``genotype_gamma{G}.json`` for every requested gamma (G formatted 1, 3, 1.5);
- ``search.log``: one line per epoch; ``tensorboard/``: the metrics per epoch;

and at the end ``cells_gamma{G}.png`` (the derived cells), ``alphas.png`` (the alpha
evolution) and ``results.json``.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from larq_bnas._digits import DIGITS
from larq_bnas._io import read_json, write_json
from larq_bnas.checkpointing import RunDirectory
from larq_bnas.search.derive import (
    decisiveness,
    derive_genotype,
    format_decisiveness,
    format_gamma,
)
from larq_bnas.search.model import (
    ARCH_LR,
    ARCH_WEIGHT_DECAY,
    DIVERSITY_LAMBDA,
    SearchModel,
    scaled_tau,
)
from larq_bnas.search.supernet import SupernetConfig, resolve_layer_set
from larq_bnas.training import data

#: Options that define the supernet and its data: a resumed search must keep them.
ARCHITECTURE_KEYS = (
    "dataset",
    "cells",
    "channels",
    "input_size",
    "layer_set",
    "batch_size",
    "pad_values",
    "fused",
)
#: Options a resumed search must keep: the supernet, its data and its training.
RESUME_KEYS = (
    *ARCHITECTURE_KEYS,
    "seed",
    "diversity_lambda",
    "arch_learning_rate",
    "arch_weight_decay",
    "steps_per_epoch",
)
#: Input size of the embedded digits (8x8 images) when none is given; other datasets: 32.
DIGITS_INPUT_SIZE = DIGITS.input_size


def search_data(
    dataset: str,
    *,
    batch_size: int,
    input_size: int,
    seed: int = 0,
    data_dir: str | os.PathLike | None = None,
) -> tuple[tf.data.Dataset, int]:
    """``((x_train, y_train), (x_val, y_val))`` pairs from the two halves of the training
    split (repeated forever), and the number of steps of one epoch (one pass over the
    smaller half, full batches only)."""
    halves = ("train[:50%]", "train[50%:]")
    sizes = [data.num_examples(dataset, split, data_dir) for split in halves]
    steps = min(sizes) // batch_size
    if steps < 1:
        raise ValueError(
            f"batch size {batch_size} is larger than half of the training split of "
            f"{dataset!r} ({min(sizes)} images); use a smaller --batch-size"
        )
    train, val = (
        data.load(
            dataset,
            split,
            input_size=input_size,
            batch_size=batch_size,
            shuffle=True,
            repeat=True,
            seed=seed + i,
            drop_remainder=True,
            data_dir=data_dir,
        )
        for i, split in enumerate(halves)
    )
    return tf.data.Dataset.zip((train, val)), steps


def _alphas_record(model: SearchModel, epoch: int) -> dict[str, Any]:
    return {
        "layer_set": list(model.layer_set),
        "epoch": int(epoch),
        "alpha_normal": model.alpha_normal.numpy().tolist(),
        "alpha_reduce": model.alpha_reduce.numpy().tolist(),
    }


class AlphaHistory(tf.keras.callbacks.Callback):
    """After each epoch: append the alphas to ``alphas.json``, write ``alphas_final.json``
    and the genotype of every gamma. On resume, epochs after the checkpoint are dropped."""

    def __init__(
        self,
        out: Path,
        gammas: Sequence[float],
        discard_zeroise: bool = False,
        log_path: Path | None = None,
    ) -> None:
        super().__init__()
        self.out = out
        self.gammas = list(gammas)
        self.discard_zeroise = discard_zeroise
        self.log_path = log_path
        self._history: dict[str, Any] | None = None
        self._start = time.time()

    @property
    def path(self) -> Path:
        return self.out / "alphas.json"

    def on_train_begin(self, logs: dict | None = None) -> None:
        if not self.path.exists():  # a new search: record the initialisation as epoch 0
            record = _alphas_record(self.model, 0)
            history = {
                "layer_set": record["layer_set"],
                "epochs": [0],
                "alpha_normal": [record["alpha_normal"]],
                "alpha_reduce": [record["alpha_reduce"]],
            }
            write_json(self.path, history)

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._start = time.time()
        if self._history is None:
            history = read_json(self.path)
            keep = [i for i, e in enumerate(history["epochs"]) if e <= epoch]
            for key in ("epochs", "alpha_normal", "alpha_reduce"):
                history[key] = [history[key][i] for i in keep]
            self._history = history

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        record = _alphas_record(self.model, epoch + 1)
        assert self._history is not None
        self._history["epochs"].append(epoch + 1)
        self._history["alpha_normal"].append(record["alpha_normal"])
        self._history["alpha_reduce"].append(record["alpha_reduce"])
        write_json(self.path, self._history)
        write_json(self.out / "alphas_final.json", record)
        genotypes = write_genotypes(self.out, record, self.gammas, self.discard_zeroise)
        if self.log_path is not None:
            parts = [f"epoch {epoch + 1}", f"{time.time() - self._start:.1f}s"]
            parts += [
                f"{k}={float(v):.4g}"
                for k, v in (logs or {}).items()
                if isinstance(v, (int, float, np.floating))
            ]
            first = next(iter(genotypes.values()))
            d = decisiveness(
                record["alpha_normal"],
                record["alpha_reduce"],
                self.gammas[0],
                record["layer_set"],
                self.discard_zeroise,
            )
            for kind in ("normal", "reduce"):
                parts.append(f"chosen_weight_mean_{kind}={d[kind]['chosen_weight_mean']:.4f}")
                parts.append(f"entropy_{kind}={d[kind]['entropy']:.4f}")
            parts.append(f"normal={[tuple(p) for p in first.normal]}")
            parts.append(f"reduce={[tuple(p) for p in first.reduce]}")
            with open(self.log_path, "a", encoding="utf-8") as f:  # append-only log
                f.write("  ".join(parts) + "\n")


def write_genotypes(
    out: Path, alphas: dict[str, Any], gammas: Sequence[float], discard_zeroise: bool = False
) -> dict[float, Any]:
    """Derive and save ``genotype_gamma{G}.json`` for each gamma; return the genotypes."""
    result = {}
    for gamma in gammas:
        suffix = "_nozeroise" if discard_zeroise else ""
        genotype = derive_genotype(
            alphas["alpha_normal"],
            alphas["alpha_reduce"],
            gamma,
            alphas["layer_set"],
            discard_zeroise,
            name=f"searched_gamma{format_gamma(gamma)}{suffix}",
        )
        genotype.save(out / f"genotype_gamma{format_gamma(gamma)}.json")
        result[gamma] = genotype
    return result


def _check_gammas(gammas: Sequence[float]) -> list[float]:
    values = [float(g) for g in gammas]
    if not values:
        raise ValueError("Give at least one gamma (the transferability parameter), e.g. 1")
    for g in values:
        if not g > 0:
            raise ValueError(f"gamma must be > 0, got {g:g}")
    return list(dict.fromkeys(values))


def run_search(
    output_dir: str | os.PathLike,
    *,
    dataset: str = "digits",
    epochs: int = 50,
    cells: int = 8,
    channels: int = 16,
    batch_size: int = 64,
    input_size: int | None = None,
    layer_set: str | Sequence[str] | None = None,
    gammas: Sequence[float] = (1.0, 3.0),
    diversity_lambda: float = DIVERSITY_LAMBDA,
    diversity_tau: float | None = None,
    arch_learning_rate: float = ARCH_LR,
    arch_weight_decay: float = ARCH_WEIGHT_DECAY,
    discard_zeroise: bool = False,
    seed: int = 0,
    jit_compile: bool = False,
    resume: bool = False,
    data_dir: str | os.PathLike | None = None,
    steps_per_epoch: int | None = None,
    pad_values: float = 1.0,
    fused: bool = True,
    tensorboard: bool = True,
    verbose: int | str = 1,
    extra_callbacks: Sequence[tf.keras.callbacks.Callback] = (),
) -> dict[str, Any]:
    """Search BNAS cells on ``dataset`` into ``output_dir``; return the results dict.

    Args:
        output_dir: the run directory (see the module docstring for its files).
        dataset: "digits" (embedded), a tfds name such as "cifar10", or "folder:PATH".
        epochs: search epochs (paper: 50); the cosine schedule spans them.
        cells, channels: the supernet (paper: 8 cells, C = 16).
        batch_size: images per half-batch (paper: 64).
        input_size: square input size (default 16 for digits, else 32).
        layer_set: a preset (bnas, no_dilated, with_sep), comma-separated names or a list.
        gammas: the transferability values to derive genotypes for (> 0).
        diversity_lambda: the diversity regularizer's weight (0: off).
        diversity_tau: its decay in epochs; default ``scaled_tau(epochs)``, the paper's
            7.7 of 50 epochs scaled to this search's length (7.7 at 50 epochs).
        arch_learning_rate: Adam's learning rate for the alphas (paper: 3e-4).
        arch_weight_decay: L2 on the alphas (paper: 1e-3).
        discard_zeroise: derive without Zeroise (ablation "No Zeroise").
        seed: seeds weights, alphas and data order.
        jit_compile: compile the search step with XLA.
        resume: continue the search found in ``output_dir`` (more epochs allowed).
        data_dir: where tfds datasets are prepared.
        steps_per_epoch: cap the steps of an epoch (default: one pass over a half).
        pad_values: padding of the binary convolutions (1.0 as the zoo networks).
        fused: the fused supernet implementation (same function, faster).
        tensorboard: write TensorBoard logs.
        verbose: Keras ``fit`` verbosity (1: progress bar, 2: one line per epoch).
        extra_callbacks: more Keras callbacks for ``fit``.
    """
    gammas = _check_gammas(gammas)
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1, got {batch_size}")
    if steps_per_epoch is not None and steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be at least 1, got {steps_per_epoch}")
    layer_set = resolve_layer_set(layer_set)
    meta = data.info(dataset, data_dir)  # unknown or missing datasets fail here, clearly
    if input_size is None:
        input_size = DIGITS_INPUT_SIZE if dataset == DIGITS.name else 32
    config = SupernetConfig(
        cells=cells,
        channels=channels,
        layer_set=layer_set,
        input_size=input_size,
        num_classes=meta.num_classes,
        pad_values=pad_values,
        fused=fused,
    )
    tau_source = "given" if diversity_tau is not None else "scaled: epochs * 7.7 / 50"
    if diversity_tau is None:
        diversity_tau = scaled_tau(epochs)
    if not arch_learning_rate > 0:
        raise ValueError(f"arch_learning_rate must be > 0, got {arch_learning_rate}")
    if arch_weight_decay < 0:
        raise ValueError(f"arch_weight_decay must be >= 0, got {arch_weight_decay}")
    if diversity_lambda < 0 or not diversity_tau > 0:
        raise ValueError(
            f"diversity lambda must be >= 0 and tau > 0, got {diversity_lambda} and {diversity_tau}"
        )
    out = Path(output_dir)
    record = {
        "dataset": dataset,
        "cells": cells,
        "channels": channels,
        "batch_size": batch_size,
        "input_size": input_size,
        "layer_set": list(layer_set),
        "pad_values": pad_values,
        "fused": fused,
        "epochs": epochs,
        "gammas": gammas,
        "diversity_lambda": diversity_lambda,
        "diversity_tau": diversity_tau,
        "diversity_tau_source": tau_source,
        "arch_learning_rate": arch_learning_rate,
        "arch_weight_decay": arch_weight_decay,
        "discard_zeroise": discard_zeroise,
        "seed": seed,
        "steps_per_epoch": steps_per_epoch,
    }
    # A resume must keep the options that change the search's results (more epochs are
    # allowed); the directory refuses others, listing each difference.
    run = RunDirectory(
        out,
        "search",
        record,
        resume=resume,
        result_keys=RESUME_KEYS,
        snapshot_files=("alphas.json", "alphas_final.json"),
    )

    start = time.time()
    trained = run.epochs_done < epochs or not (out / "alphas_final.json").exists()
    if trained:
        if run.finished:
            run.update_state(finished=False)
        tf.keras.utils.set_random_seed(seed)
        model = SearchModel(config, diversity_lambda=diversity_lambda, diversity_tau=diversity_tau)
        model.compile(
            jit_compile=jit_compile,
            arch_learning_rate=arch_learning_rate,
            arch_weight_decay=arch_weight_decay,
        )
        pairs, steps = search_data(
            dataset, batch_size=batch_size, input_size=input_size, seed=seed, data_dir=data_dir
        )
        steps = steps_per_epoch or steps
        callbacks: list[tf.keras.callbacks.Callback] = [
            AlphaHistory(out, gammas, discard_zeroise, log_path=out / "search.log"),
            *run.fit_callbacks(),
        ]
        if tensorboard:
            callbacks.append(
                tf.keras.callbacks.TensorBoard(str(out / "tensorboard"), write_graph=False)
            )
        callbacks += list(extra_callbacks)
        model.fit(pairs, epochs=epochs, steps_per_epoch=steps, callbacks=callbacks, verbose=verbose)
    return _finish(run, out, gammas, discard_zeroise, time.time() - start, record)


def _finish(
    run: RunDirectory,
    out: Path,
    gammas: list[float],
    discard_zeroise: bool,
    seconds: float,
    record: dict[str, Any],
) -> dict[str, Any]:
    from larq_bnas.search.derive import softmax
    from larq_bnas.search.plots import plot_alphas, plot_genotype

    alphas = read_json(out / "alphas_final.json")
    genotypes = write_genotypes(out, alphas, gammas, discard_zeroise)
    files = {
        "alphas": "alphas.json",
        "alphas_final": "alphas_final.json",
        "alphas_png": "alphas.png",
    }
    for gamma, genotype in genotypes.items():
        g = format_gamma(gamma)
        plot_genotype(
            genotype,
            out / f"cells_gamma{g}.png",
            title=f"searched cells, gamma = {g}"
            + (", Zeroise discarded" if discard_zeroise else "")
            + f" (after epoch {alphas['epoch']})",
        )
        files[f"genotype_gamma{g}"] = f"genotype_gamma{g}.json"
        files[f"cells_gamma{g}"] = f"cells_gamma{g}.png"
    plot_alphas(read_json(out / "alphas.json"), out / "alphas.png")
    history = run.history()
    rows = np.concatenate([np.asarray(alphas["alpha_normal"]), np.asarray(alphas["alpha_reduce"])])
    p = softmax(rows)
    entropy = float(np.mean(-np.sum(p * np.log(p), axis=-1)))
    decisive = {
        format_gamma(g): decisiveness(
            alphas["alpha_normal"], alphas["alpha_reduce"], g, alphas["layer_set"], discard_zeroise
        )
        for g in gammas
    }
    lines = [f"after epoch {alphas['epoch']}: decisiveness of the derived cells"]
    for report in decisive.values():
        lines += format_decisiveness(report)
    with open(out / "search.log", "a", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    warning = next((r["warning"] for r in decisive.values() if r["warning"]), None)
    if warning:
        warnings.warn(f"{out}: {warning}", UserWarning, stacklevel=3)
    results = {
        "options": record,
        "epochs_done": run.epochs_done,
        "genotypes": {format_gamma(g): gt.to_dict() for g, gt in genotypes.items()},
        "alpha_entropy": entropy,
        "chosen_weight_mean": {
            g: {k: r[k]["chosen_weight_mean"] for k in ("normal", "reduce")}
            for g, r in decisive.items()
        },
        "entropy": {k: next(iter(decisive.values()))[k]["entropy"] for k in ("normal", "reduce")},
        "decisiveness": decisive,
        "warning": warning,
        "last_epoch": history[-1] if history else {},
        "search_seconds_this_session": seconds,
        "files": files,
    }
    write_json(out / "results.json", results)
    run.mark_finished(alpha_entropy=entropy)
    return results
