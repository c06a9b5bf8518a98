import numpy as np
import pytest
import tensorflow as tf

from larq_bnas import _io
from larq_bnas.checkpointing import RunDirectory


def _model():
    model = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(3)])
    model.compile(tf.keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
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


def test_interrupted_fit_resumes_and_loses_at_most_the_running_epoch(tmp_path):
    run = RunDirectory(tmp_path / "job", "train", {"lr": 0.1})
    model = _model()
    with pytest.raises(KeyboardInterrupt):
        model.fit(_data(), epochs=4, verbose=0, callbacks=[*run.fit_callbacks(), _StopAfter(2)])
    assert run.read_state()["epochs_done"] == 2
    assert [e["epoch"] for e in run.history()] == [1, 2]
    saved = model.get_weights()

    with pytest.raises(ValueError, match="already holds a train run.*--resume"):
        RunDirectory(tmp_path / "job", "train")
    with pytest.raises(ValueError, match="not a 'search' run"):
        RunDirectory(tmp_path / "job", "search", resume=True)

    resumed = RunDirectory(tmp_path / "job", "train", resume=True)
    model2 = _model()
    history = model2.fit(_data(), epochs=4, verbose=0, callbacks=resumed.fit_callbacks())
    assert len(history.epoch) == 2 and history.epoch[0] == 2  # epochs 3 and 4 only
    assert [e["epoch"] for e in resumed.history()] == [1, 2, 3, 4]
    assert resumed.read_state()["epochs_done"] == 4
    assert not np.allclose(model2.get_weights()[0], saved[0])  # it trained on
    assert all("loss" in e and "lr" in e for e in resumed.history())


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
