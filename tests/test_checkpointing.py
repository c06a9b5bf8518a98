import os

import numpy as np
import pytest
import tensorflow as tf

from larq_bnas import _io
from larq_bnas.checkpointing import RunDirectory
from larq_bnas.errors import InputError, OptionsMismatch


def _model(seed=0):
    tf.keras.utils.set_random_seed(seed)
    model = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(3)])
    model.compile(tf.keras.optimizers.Adam(0.1), "sparse_categorical_crossentropy")
    return model


def _data():
    rng = np.random.RandomState(0)
    return tf.data.Dataset.from_tensor_slices(
        (rng.randn(32, 4).astype("float32"), rng.randint(0, 3, 32))
    ).batch(8)


class _StopAfter(tf.keras.callbacks.Callback):
    """Simulate a kill: abort in the middle of epoch ``epoch`` (0-based)."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self._current == self.epoch and batch == 1:
            raise KeyboardInterrupt

    def on_epoch_begin(self, epoch, logs=None):
        self._current = epoch


class _Weights(tf.keras.callbacks.Callback):
    """Record the weights and Adam's step count when each epoch begins."""

    def __init__(self):
        super().__init__()
        self.at_begin = {}

    def on_epoch_begin(self, epoch, logs=None):
        self.at_begin[epoch] = (
            [w.copy() for w in self.model.get_weights()],
            int(self.model.optimizer.iterations.numpy()),
        )


def test_interrupted_fit_resumes_from_the_committed_epoch(tmp_path):
    run = RunDirectory(tmp_path / "job", "train", {"lr": 0.1})
    model = _model()
    weights = _Weights()
    with pytest.raises(KeyboardInterrupt):
        model.fit(
            _data(), epochs=4, verbose=0, callbacks=[weights, *run.fit_callbacks(), _StopAfter(2)]
        )
    assert run.read_state()["epochs_done"] == 2
    assert [e["epoch"] for e in run.history()] == [1, 2]
    after_two, steps = weights.at_begin[2]  # the state committed after epoch 2
    assert steps == 8

    with pytest.raises(InputError, match="already holds a train run.*--resume"):
        RunDirectory(tmp_path / "job", "train")
    with pytest.raises(InputError, match="not a 'search' run"):
        RunDirectory(tmp_path / "job", "search", resume=True)

    resumed = RunDirectory(tmp_path / "job", "train", resume=True)
    model2 = _model(seed=1)  # other initial weights: only a restore makes them equal
    assert not np.allclose(model2.get_weights()[0], after_two[0])
    seen = _Weights()
    history = model2.fit(_data(), epochs=4, verbose=0, callbacks=[seen, *resumed.fit_callbacks()])
    assert history.epoch == [2, 3]  # epochs 3 and 4 only
    restored, restored_steps = seen.at_begin[2]
    for got, want in zip(restored, after_two, strict=True):
        np.testing.assert_array_equal(got, want)  # the weights were restored ...
    assert restored_steps == 8  # ... and the optimizer's state with them
    assert [e["epoch"] for e in resumed.history()] == [1, 2, 3, 4]
    assert resumed.read_state()["epochs_done"] == 4
    assert all("loss" in e and "lr" in e for e in resumed.history())
    assert [p.name for p in (tmp_path / "job" / "epochs").iterdir()] == ["0004"]


def test_a_kill_before_the_views_are_written_keeps_the_commit(tmp_path):
    run = RunDirectory(tmp_path / "job", "train", {}, snapshot_files=("best.h5",))
    model = _model()
    model.fit(_data(), epochs=2, verbose=0, callbacks=run.fit_callbacks())
    committed = (tmp_path / "job" / "epochs" / "0002").exists()
    assert committed
    # A kill after the commit of epoch 2 but before the views were refreshed, with a
    # snapshot file written by the lost epoch 3 and a half-written staging directory.
    history = run.history()
    _io.write_json(run.history_path, history[:1])
    state = run.read_state()
    _io.write_json(run.state_path, {**state, "epochs_done": 1})
    (tmp_path / "job" / "best.h5").write_text("from the lost epoch")
    (tmp_path / "job" / "epochs" / ".staging-0003").mkdir()
    half = tmp_path / "job" / f".best.h5{_io.TEMPORARY}x1y2z3.h5"  # a killed atomic write
    half.write_bytes(b"half an HDF5 file")
    reopened = RunDirectory(tmp_path / "job", "train", {}, resume=True, snapshot_files=("best.h5",))
    assert reopened.epochs_done == 2 and reopened.history() == history
    assert not (tmp_path / "job" / "best.h5").exists()
    assert sorted(os.listdir(tmp_path / "job" / "epochs")) == ["0002"]
    assert not half.exists()


def test_snapshot_files_roll_back_to_the_commit(tmp_path):
    job = tmp_path / "job"
    run = RunDirectory(job, "train", {}, snapshot_files=("alphas.json",))

    class Alphas(tf.keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            _io.write_json(job / "alphas.json", {"epoch": epoch + 1})

    _model().fit(_data(), epochs=2, verbose=0, callbacks=[Alphas(), *run.fit_callbacks()])
    _io.write_json(job / "alphas.json", {"epoch": 3})  # epoch 3 killed before its commit
    RunDirectory(job, "train", {}, resume=True, snapshot_files=("alphas.json",))
    assert _io.read_json(job / "alphas.json") == {"epoch": 2}


def test_resume_refuses_options_that_change_results(tmp_path):
    RunDirectory(tmp_path / "job", "train", {"epochs": 12, "cells": 3, "data_dir": "a"})
    with pytest.raises(OptionsMismatch, match="epochs: 12 -> 4, cells: 3 -> 5") as info:
        RunDirectory(
            tmp_path / "job",
            "train",
            {"epochs": 4, "cells": 5, "data_dir": "b"},
            resume=True,
            result_keys=("epochs", "cells"),
        )
    assert info.value.differences == {"epochs": (12, 4), "cells": (3, 5)}
    run = RunDirectory(
        tmp_path / "job",
        "train",
        {"epochs": 12, "cells": 3, "data_dir": "b"},
        resume=True,
        result_keys=("epochs", "cells"),
    )  # data_dir does not change results: accepted and recorded
    assert run.read_state()["options"]["data_dir"] == "b"


def test_atomic_writes_leave_no_partial_file(tmp_path):
    path = tmp_path / "out.json"
    _io.write_json(path, {"a": 1})
    with pytest.raises(RuntimeError):
        with _io.atomic_path(path) as tmp:
            tmp.write_text("partial")
            raise RuntimeError
    assert _io.read_json(path) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]
    _io.write_json(path, {"x": np.float32(1.5), "y": np.arange(2)})
    assert _io.read_json(path) == {"x": 1.5, "y": [0, 1]}
