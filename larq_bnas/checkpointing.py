"""Resumable long jobs: one output directory, state saved after every epoch.

Every long job (a search, a training run, a stage of ``larq_bnas run``) works in a
``RunDirectory``. Its ``fit_callbacks()`` make ``model.fit`` resumable:

- ``checkpoint/``: model and optimizer state after each epoch (Keras
  ``BackupAndRestore``; any variable or optimizer the model tracks as an attribute is
  included, e.g. a search's architecture parameters and their optimizer);
- ``history.json``: one entry of logs per finished epoch, written atomically;
- ``state.json``: what the job is, its options, and how many epochs are done.

A job killed mid-epoch loses at most that epoch: re-running it with ``resume=True``
restores the last checkpoint and ``fit`` continues from the next epoch. Without
``resume``, a directory that already holds a job is refused, so nothing is overwritten
by accident.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import tensorflow as tf

from larq_bnas._io import read_json, write_json


class RunDirectory:
    """The output directory of one resumable job.

    Args:
        path: the directory (created if missing).
        kind: what the job is ("search", "train", ...); a resumed directory must match.
        options: the job's options, recorded in state.json.
        resume: continue the job found in ``path``; otherwise ``path`` must not hold one.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        kind: str,
        options: dict[str, Any] | None = None,
        resume: bool = False,
    ) -> None:
        self.path = Path(path)
        self.kind = kind
        self.resume = resume
        state = self.read_state()
        if state is not None and not resume:
            raise ValueError(
                f"{self.path} already holds a {state.get('kind', 'job')} run "
                f"({state.get('epochs_done', 0)} epochs done); pass --resume (resume=True) "
                "to continue it, or choose another output directory"
            )
        if state is not None and state.get("kind") != kind:
            raise ValueError(
                f"{self.path} holds a {state.get('kind')!r} run, not a {kind!r} run; "
                "choose another output directory"
            )
        self.path.mkdir(parents=True, exist_ok=True)
        if state is None:
            state = {"kind": kind, "options": options or {}, "epochs_done": 0, "finished": False}
            write_json(self.state_path, state)
        self.state = state

    # --- files -------------------------------------------------------------------
    @property
    def state_path(self) -> Path:
        return self.path / "state.json"

    @property
    def history_path(self) -> Path:
        return self.path / "history.json"

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / "checkpoint"

    def read_state(self) -> dict[str, Any] | None:
        return read_json(self.state_path) if self.state_path.exists() else None

    def update_state(self, **changes: Any) -> None:
        self.state.update(changes)
        write_json(self.state_path, self.state)

    def history(self) -> list[dict[str, Any]]:
        """One dict of logs per finished epoch (``epoch`` is 1-based)."""
        return read_json(self.history_path) if self.history_path.exists() else []

    @property
    def epochs_done(self) -> int:
        return int(self.state.get("epochs_done", 0))

    @property
    def finished(self) -> bool:
        return bool(self.state.get("finished", False))

    def mark_finished(self, **results: Any) -> None:
        self.update_state(finished=True, **results)

    # --- model.fit -------------------------------------------------------------------
    def fit_callbacks(self) -> list[tf.keras.callbacks.Callback]:
        """Callbacks that make ``model.fit`` resumable in this directory."""
        return [
            tf.keras.callbacks.BackupAndRestore(
                str(self.checkpoint_dir), save_freq="epoch", delete_checkpoint=False
            ),
            EpochLog(self),
        ]

    def clear_checkpoint(self) -> None:
        """Remove the epoch checkpoint (e.g. once final weights are saved)."""
        shutil.rmtree(self.checkpoint_dir, ignore_errors=True)


class EpochLog(tf.keras.callbacks.Callback):
    """Append each epoch's logs (and the learning rate) to history.json atomically."""

    def __init__(self, run: RunDirectory) -> None:
        super().__init__()
        self.run = run
        self._entries: list[dict[str, Any]] | None = None

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        if self._entries is None:
            # After a restore, fit starts at the checkpoint's epoch: drop anything later.
            self._entries = [e for e in self.run.history() if e["epoch"] <= epoch]

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        entry: dict[str, Any] = {"epoch": epoch + 1}
        for key, value in (logs or {}).items():
            try:
                entry[key] = float(value)
            except (TypeError, ValueError):
                continue
        lr = _current_lr(self.model)
        if lr is not None and "lr" not in entry:
            entry["lr"] = lr
        assert self._entries is not None
        self._entries.append(entry)
        write_json(self.run.history_path, self._entries)
        self.run.update_state(epochs_done=epoch + 1)


def _current_lr(model: tf.keras.Model) -> float | None:
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        return None
    lr = optimizer.learning_rate
    try:
        if isinstance(lr, tf.keras.optimizers.schedules.LearningRateSchedule):
            return float(lr(optimizer.iterations))
        return float(tf.keras.backend.get_value(lr))
    except (TypeError, ValueError):
        return None
