"""Resumable long jobs: one output directory, one committed unit of state per epoch.

Every long job (a search, a training run, a stage of ``larq_bnas run``, a study) works
in a ``RunDirectory``; ``fit_callbacks()`` make ``model.fit`` resumable there. After each
epoch the job's state is committed as **one unit**::

    epochs/.staging-0007/          written first, every file fsynced
        checkpoint/ckpt.*          model + optimizer (anything the model tracks, e.g. a
                                   search's architecture parameters and their optimizer)
        history.json               one entry of logs per finished epoch
        state.json                 what the job is, its options, epochs done
        files/                     hard links to the epoch's other files (best weights,
                                   alphas, flip statistics: ``snapshot_files``)
    epochs/0007/                   ... then renamed: this rename is the commit

and only then are the views beside it refreshed (``history.json``, ``state.json`` and the
snapshot files at the top of the directory) and the previous commit deleted. A job killed
at any instant (``kill -9`` included) loses at most the epoch that was running: when the
directory is opened again, unfinished staging directories and the temporary files of
interrupted atomic writes are dropped, the views are
rebuilt from the last commit, and ``fit`` restarts after its epoch.

A resumed job must keep the options that change its results (``result_keys``): the
directory refuses other values with an ``OptionsMismatch`` listing each difference
(recorded -> given). Without ``resume``, a directory that already holds a job is refused,
so nothing is overwritten by accident.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import tensorflow as tf

from larq_bnas._io import (
    atomic_path,
    fsync_path,
    fsync_tree,
    read_json,
    remove_temporary_files,
    write_json,
)
from larq_bnas.errors import InputError, OptionsMismatch

_STAGING = ".staging-"
_TRASH = ".trash-"


def _canonical(value: Any) -> Any:
    """Compare options as they are recorded: JSON (tuples become lists, ...)."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def option_differences(
    recorded: dict[str, Any], given: dict[str, Any], keys: Iterable[str]
) -> dict[str, tuple[Any, Any]]:
    """``{key: (recorded, given)}`` for each of ``keys`` recorded with another value.

    A key missing from ``recorded`` (a run made by an older version) is not compared."""
    return {
        key: (recorded[key], given.get(key))
        for key in keys
        if key in recorded and _canonical(recorded[key]) != _canonical(given.get(key))
    }


def format_differences(differences: dict[str, tuple[Any, Any]]) -> str:
    """``"epochs: 12 -> 4, cells: 3 -> 5"``."""
    return ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in differences.items())


class RunDirectory:
    """The output directory of one resumable job (see the module docstring).

    Args:
        path: the directory (created if missing).
        kind: what the job is ("search", "train", ...); a resumed directory must match.
        options: the job's options, recorded in state.json.
        resume: continue the job found in ``path``; otherwise ``path`` must not hold one.
        result_keys: the options that change the job's results; resuming with another
            value of any of them raises ``OptionsMismatch``. The other options are
            recorded with their new values.
        snapshot_files: files at the top of the directory that belong to an epoch's state
            (written by callbacks before the commit); each commit keeps them, and reopening
            the directory puts back the committed versions.
        resume_hint: how to resume instead, in the ``OptionsMismatch`` message.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        kind: str,
        options: dict[str, Any] | None = None,
        resume: bool = False,
        result_keys: Sequence[str] = (),
        snapshot_files: Sequence[str] = (),
        resume_hint: str = "resume it with the recorded values",
    ) -> None:
        self.path = Path(path)
        self.kind = kind
        self.resume = resume
        self.snapshot_files = tuple(snapshot_files)
        state = self._recover()
        if state is not None and not resume:
            raise InputError(
                f"{self.path} already holds a {state.get('kind', 'job')} run "
                f"({state.get('epochs_done', 0)} epochs done); pass --resume (resume=True) "
                "to continue it, or choose another output directory"
            )
        if state is not None and state.get("kind") != kind:
            raise InputError(
                f"{self.path} holds a {state.get('kind')!r} run, not a {kind!r} run; "
                "choose another output directory"
            )
        if state is not None and options is not None:
            differences = option_differences(state.get("options", {}), options, result_keys)
            if differences:
                raise OptionsMismatch(
                    f"{self.path} holds a {kind} run made with other options that change "
                    f"its results ({format_differences(differences)}); {resume_hint}, or "
                    "choose another output directory",
                    differences,
                )
        self.path.mkdir(parents=True, exist_ok=True)
        if state is None:
            state = {"kind": kind, "options": options or {}, "epochs_done": 0, "finished": False}
            write_json(self.state_path, state)
        elif options is not None and _canonical(state.get("options")) != _canonical(options):
            state["options"] = {**state.get("options", {}), **options}
            write_json(self.state_path, state)
        self.state: dict[str, Any] = state

    # --- files -------------------------------------------------------------------
    @property
    def state_path(self) -> Path:
        return self.path / "state.json"

    @property
    def history_path(self) -> Path:
        return self.path / "history.json"

    @property
    def epochs_dir(self) -> Path:
        return self.path / "epochs"

    @property
    def checkpoint_dir(self) -> Path:
        """The checkpoint of the last committed epoch (may not exist)."""
        latest = self.latest_commit()
        return (latest if latest is not None else self.epochs_dir / "none") / "checkpoint"

    def latest_commit(self) -> Path | None:
        """The directory of the last committed epoch, or None."""
        return latest_commit(self.path)

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

    # --- commit and recovery ------------------------------------------------------
    def commit_epoch(
        self, epochs_done: int, history: list[dict[str, Any]], model: tf.keras.Model | None
    ) -> Path:
        """Commit the state after ``epochs_done`` epochs as one unit (module docstring)."""
        name = f"{epochs_done:04d}"
        staging = self.epochs_dir / f"{_STAGING}{name}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        if model is not None:
            tf.train.Checkpoint(model=model).write(str(staging / "checkpoint" / "ckpt"))
        state = {**self.state, "epochs_done": epochs_done, "finished": False}
        write_json(staging / "history.json", history, durable=False)
        write_json(staging / "state.json", state, durable=False)
        for file in self.snapshot_files:
            source = self.path / file
            if source.is_file():
                (staging / "files").mkdir(exist_ok=True)
                _link_or_copy(source, staging / "files" / file)
        fsync_tree(staging)
        final = self.epochs_dir / name
        if final.exists():  # re-running an epoch that was committed before: replace it
            _remove(final)
        os.rename(staging, final)  # the commit
        fsync_path(self.epochs_dir)
        self.state = state
        write_json(self.history_path, history)
        write_json(self.state_path, state)
        for old in self.epochs_dir.iterdir():
            if old.name.isdigit() and old.name != name:
                _remove(old)
        return final

    def _recover(self) -> dict[str, Any] | None:
        """The job's state, with the views rebuilt from the last commit (after a kill)."""
        if self.path.is_dir():
            remove_temporary_files(self.path)  # half-written files of a killed writer
        if self.epochs_dir.is_dir():
            for leftover in self.epochs_dir.iterdir():
                if leftover.name.startswith((_STAGING, _TRASH)):
                    shutil.rmtree(leftover, ignore_errors=True)
        state = self.read_state()
        latest = self.latest_commit()
        if latest is None:
            return state
        committed = read_json(latest / "state.json")
        state = state if state is not None else committed
        history = read_json(latest / "history.json")
        if state.get("epochs_done") != committed["epochs_done"]:
            state["epochs_done"] = committed["epochs_done"]
            state["finished"] = False
            write_json(self.state_path, state)
        if self.history() != history:
            write_json(self.history_path, history)
        kept = latest / "files"
        for file in self.snapshot_files:
            top, saved = self.path / file, kept / file
            if saved.is_file():
                if not (top.is_file() and os.path.samefile(top, saved)):
                    with atomic_path(top) as tmp:
                        shutil.copyfile(saved, tmp)
            elif top.exists():  # written by the epoch that was lost
                top.unlink()
        return state

    # --- model.fit -------------------------------------------------------------------
    def fit_callbacks(
        self, restore_from: str | os.PathLike | None = None
    ) -> list[tf.keras.callbacks.Callback]:
        """Callbacks that make ``model.fit`` resumable in this directory.

        ``restore_from``: restore from another run directory's last commit (the chief's,
        for the other workers of a multi-worker run; only read). Put other callbacks that write
        ``snapshot_files`` before these."""
        return [EpochCommit(self, restore_from=restore_from)]

    def clear_checkpoint(self) -> None:
        """Remove the committed epochs (e.g. once final weights are saved)."""
        shutil.rmtree(self.epochs_dir, ignore_errors=True)


def latest_commit(path: str | os.PathLike) -> Path | None:
    """The last committed epoch of the run directory ``path`` (read only), or None."""
    epochs = Path(path) / "epochs"
    if not epochs.is_dir():
        return None
    done = [p for p in epochs.iterdir() if p.name.isdigit() and p.is_dir()]
    return max(done, key=lambda p: int(p.name)) if done else None


def _link_or_copy(source: Path, dest: Path) -> None:
    # Files are replaced by rename, never changed in place: a hard link is a snapshot.
    try:
        os.link(source, dest)
    except OSError:
        shutil.copy2(source, dest)


def _remove(path: Path) -> None:
    trash = path.with_name(f"{_TRASH}{path.name}")
    os.rename(path, trash)
    shutil.rmtree(trash, ignore_errors=True)


class _InitialEpoch:
    """What Keras' ``fit`` asks a restored training state: the epoch to start at."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def maybe_load_initial_counters_from_ckpt(
        self, steps_per_epoch: int, initial_epoch: int, mode: Any = None
    ) -> tuple[int, int]:
        return max(self.epoch, initial_epoch), 0


class EpochCommit(tf.keras.callbacks.Callback):
    """Restore the last committed epoch when ``fit`` begins (``fit`` then starts after
    it); after each epoch, commit the checkpoint, the history (each epoch's logs and the
    learning rate) and the state as one unit."""

    def __init__(self, run: RunDirectory, restore_from: str | os.PathLike | None = None) -> None:
        super().__init__()
        self.run = run
        self.source = Path(restore_from) if restore_from is not None else run.path
        self._entries: list[dict[str, Any]] = []
        self._status: Any = None

    def on_train_begin(self, logs: dict | None = None) -> None:
        latest = latest_commit(self.source)
        done = 0
        if latest is not None:
            done = int(read_json(latest / "state.json")["epochs_done"])
            checkpoint = tf.train.Checkpoint(model=self.model)
            # Kept until training ends: optimizer slots are restored when first created.
            self._status = checkpoint.read(str(latest / "checkpoint" / "ckpt"))
            self._status.assert_existing_objects_matched()
        self._entries = [e for e in self.run.history() if e["epoch"] <= done]
        self.model._training_state = _InitialEpoch(done)

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
        self._entries = [e for e in self._entries if e["epoch"] <= epoch] + [entry]
        self.run.commit_epoch(epoch + 1, self._entries, self.model)

    def on_train_end(self, logs: dict | None = None) -> None:
        if getattr(self.model, "_training_state", None) is not None:
            self.model._training_state = None
        self._status = None


#: The earlier name of ``EpochCommit``.
EpochLog = EpochCommit


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
