import json

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

from larq_bnas.cli import main
from larq_bnas.training import (
    RECIPES,
    CosineRestarts,
    OneCycle,
    RAdam,
    StepDrops,
    WarmupCosine,
    evaluate,
    get_recipe,
    train,
)

TINY = {"cells": 3, "channels": 4}


def test_one_cycle_has_the_reference_shape():
    s = OneCycle(low=4e-4, high=5e-2, total_steps=1000)
    assert float(s(0)) == pytest.approx(4e-4)
    assert float(s(450)) == pytest.approx(5e-2, rel=1e-3)
    assert float(s(900)) == pytest.approx(4e-4, rel=1e-2)
    assert float(s(1000)) == pytest.approx(4e-6, rel=1e-2)
    assert s.momentum(0) == pytest.approx(0.95) and s.momentum(450) == pytest.approx(0.85)
    assert s.momentum(899) == pytest.approx(0.95, abs=1e-3)


def test_other_schedules():
    w = WarmupCosine(1.0, total_steps=100, warmup_steps=10, final=0.0)
    assert float(w(0)) == pytest.approx(0.1) and float(w(10)) == pytest.approx(1.0)
    assert float(w(55)) == pytest.approx(0.5) and float(w(100)) == pytest.approx(0.0, abs=1e-6)
    c = CosineRestarts(0.1, period_steps=50, final=1e-5)
    assert float(c(0)) == pytest.approx(0.1) and float(c(50)) == pytest.approx(0.1)
    assert float(c(49)) < 1e-3
    d = StepDrops(1e-3, [35, 37])
    assert [float(d(t)) for t in (0, 35, 37)] == pytest.approx([1e-3, 1e-4, 1e-5])


def _numpy_radam(grads, lr=0.01, b1=0.9, b2=0.999, eps=1e-8):
    w, m, v = 1.0, 0.0, 0.0
    rho_inf = 2 / (1 - b2) - 1
    out = []
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat = m / (1 - b1**t)
        rho = rho_inf - 2 * t * b2**t / (1 - b2**t)
        if rho > 5:
            r = np.sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho))
            w -= lr * r * m_hat / (np.sqrt(v / (1 - b2**t)) + eps)
        else:
            w -= lr * m_hat
        out.append(w)
    return out


def test_radam_matches_a_numpy_reference():
    grads = np.random.RandomState(0).randn(12).astype("float64")
    var = tf.Variable(1.0)
    opt = RAdam(0.01)
    got = []
    for g in grads:
        opt.apply_gradients([(tf.constant(g, tf.float32), var)])
        got.append(float(var.numpy()))
    np.testing.assert_allclose(got, _numpy_radam(grads), rtol=1e-4)


def test_every_recipe_compiles_a_model():
    for name, recipe in RECIPES.items():
        model = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(3, "softmax")])
        recipe.compile(model, epochs=10, steps_per_epoch=5)
        model.fit(np.zeros((8, 4)), np.zeros(8), verbose=0,
                  callbacks=recipe.callbacks(epochs=10, steps_per_epoch=5,
                                             optimizer=model.optimizer))
        assert model.optimizer is not None, name
    assert get_recipe("bnas-imagenet").label_smoothing == 0.1
    with pytest.raises(ValueError, match="Unknown recipe 'foo'.*bnas-cifar"):
        get_recipe("foo")


def test_weight_decay_is_coupled_l2():
    model = tf.keras.Sequential([tf.keras.Input((2,)), tf.keras.layers.Dense(1, use_bias=False)])
    model.layers[0].kernel.assign([[1.0], [2.0]])
    from larq_bnas.training import add_weight_decay

    add_weight_decay(model, 0.1)
    assert float(tf.add_n(model.losses)) == pytest.approx(0.1 * (1 + 4) / 2)


class _Interrupt(tf.keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.epoch == 1 and batch == 2:
            raise KeyboardInterrupt


@pytest.mark.slow
def test_interrupted_training_resumes_to_the_same_number_of_epochs(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train("bnas-mini", output_dir=out, epochs=3, options=TINY, verbose=0,
              extra_callbacks=[_Interrupt()])
    assert [e["epoch"] for e in json.loads((out / "history.json").read_text())] == [1]
    results = train("bnas-mini", output_dir=out, epochs=3, options=TINY, verbose=0, resume=True)
    history = json.loads((out / "history.json").read_text())
    assert [e["epoch"] for e in history] == [1, 2, 3]
    for name in ("best.weights.h5", "final.weights.h5", "curves.png", "train.log",
                 "results.json", "state.json"):
        assert (out / name).exists(), name
    assert len((out / "train.log").read_text().splitlines()) == 3
    assert 0.0 <= results["test_top1"] <= 1.0 and results["epochs"] == 3
    assert results["test_top1"] > 0.3  # learned something in 3 tiny epochs
    scored = evaluate("bnas-mini", weights=str(out / "final.weights.h5"), options=TINY)
    assert scored["top1"] == pytest.approx(results["test_top1"], abs=1e-6)
    # a finished run is returned as it is
    assert train("bnas-mini", output_dir=out, epochs=3, options=TINY, resume=True) == results


def test_cli_train_and_evaluate(tmp_path):
    runner = CliRunner()
    out = tmp_path / "cli"
    result = runner.invoke(main, ["train", "bnas-mini", "--cells", "3", "--channels", "4",
                                  "--epochs", "1", "--flip-stats", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "test top-1" in result.output
    flips = json.loads((out / "flips.json").read_text())
    assert flips[0]["layer"] == "all" and flips[0]["max"] >= flips[0]["p50"] >= 0
    result = runner.invoke(main, ["evaluate", "bnas-mini", "--cells", "3", "--channels", "4",
                                  "--weights", str(out / "final.weights.h5"), "--json"])
    assert result.exit_code == 0, result.output
    assert 0 <= json.loads(result.output)["top1"] <= 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["--recipe", "foo"], "Unknown recipe 'foo'"),
        (["--dataset", "cifar10", "--data-dir", "NODATA"], "is not prepared in"),
        (["--dataset", "nosuchset", "--data-dir", "NODATA"], "Unknown dataset 'nosuchset'"),
        (["--weights", "missing.h5"], "does not exist"),
        (["--num-classes", "3"], "the dataset sets the number of classes"),
        (["--epochs", "0"], "0 is not in the range"),
    ],
)
def test_cli_train_errors(tmp_path, args, message):
    args = [a.replace("NODATA", str(tmp_path / "nodata")) for a in args]
    result = CliRunner().invoke(main, ["train", "bnas-mini", "-o", str(tmp_path / "o"), *args])
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_cli_refuses_to_overwrite_a_run(tmp_path):
    from larq_bnas.checkpointing import RunDirectory

    RunDirectory(tmp_path / "o", "train")
    result = CliRunner().invoke(main, ["train", "bnas-mini", "-o", str(tmp_path / "o")])
    assert result.exit_code == 2 and "pass --resume" in result.output
