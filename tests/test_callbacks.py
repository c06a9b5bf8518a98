import json

import larq as lq
import numpy as np
import tensorflow as tf

from larq_bnas.training.callbacks import WeightFlipCounter


def _tiny():
    inputs = tf.keras.Input((6, 6, 2))
    x = lq.layers.QuantConv2D(
        4,
        3,
        input_quantizer="ste_sign",
        kernel_quantizer="ste_sign",
        kernel_constraint="weight_clip",
        use_bias=False,
        name="b1",
    )(inputs)
    x = tf.keras.layers.Flatten()(x)
    out = tf.keras.layers.Dense(3, activation="softmax")(x)
    model = tf.keras.Model(inputs, out)
    # A large learning rate so that signs flip often.
    model.compile(tf.keras.optimizers.SGD(2.0), "sparse_categorical_crossentropy")
    return model


class _BruteForce(tf.keras.callbacks.Callback):
    """Record the signs after every batch in NumPy and count the changes. Placed before
    the counter, its on_epoch_end also sees the counter's per-weight counts."""

    def __init__(self, counter):
        super().__init__()
        self.counter = counter
        self.per_epoch = []
        self.counted = []

    def on_train_begin(self, logs=None):
        self.prev = self._signs()

    def _signs(self):
        w = self.model.get_layer("b1").kernel.numpy()
        return np.where(w >= 0, 1, -1)

    def on_epoch_begin(self, epoch, logs=None):
        self.count = np.zeros_like(self.prev)

    def on_train_batch_end(self, batch, logs=None):
        now = self._signs()
        self.count += now != self.prev
        self.prev = now

    def on_epoch_end(self, epoch, logs=None):
        self.per_epoch.append(self.count.copy())
        self.counted.append(self.counter.counts()["b1"])


def test_counts_match_a_brute_force_count(tmp_path):
    model = _tiny()
    rng = np.random.RandomState(0)
    x = rng.randn(64, 6, 6, 2).astype("float32")
    y = rng.randint(0, 3, 64)
    counter = WeightFlipCounter(json_path=tmp_path / "flips.json", csv_path=tmp_path / "f.csv")
    brute = _BruteForce(counter)
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[brute, counter])
    assert len(brute.per_epoch) == 2
    assert brute.per_epoch[0].sum() > 0  # the test is meaningful: signs did flip
    for expected, counted in zip(brute.per_epoch, brute.counted, strict=True):
        np.testing.assert_array_equal(counted, expected)  # every weight's count
        assert counted.dtype == np.int32
    records = json.loads((tmp_path / "flips.json").read_text())
    for epoch, expected in enumerate(brute.per_epoch):
        rows = {r["layer"]: r for r in records if r["epoch"] == epoch + 1}
        assert rows["b1"]["max"] == expected.max()
        assert rows["b1"]["p50"] == np.percentile(expected, 50)
        assert rows["b1"]["p99"] == np.percentile(expected, 99)
        assert history.history["flips_max"][epoch] == expected.max()
        assert history.history["flips/b1/p90"][epoch] == np.percentile(expected, 90)
    assert (tmp_path / "f.csv").read_text().splitlines()[0].startswith("epoch,layer,p50")


def test_no_binary_layers_is_a_no_op():
    model = tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(2)])
    model.compile("sgd", "mse")
    history = model.fit(
        np.zeros((4, 3)), np.zeros((4, 2)), verbose=0, callbacks=[WeightFlipCounter()]
    )
    assert "flips_max" not in history.history
