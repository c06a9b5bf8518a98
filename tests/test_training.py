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
    schedule_of,
    train,
)

TINY = {"cells": 3, "channels": 4}
CLI_TINY = ["--cells", "3", "--channels", "4", "--input-size", "8"]


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


@pytest.mark.slow
def test_every_recipe_compiles_a_model():
    x = np.random.RandomState(0).randn(8, 4).astype("float32")
    for name, recipe in RECIPES.items():
        tf.keras.utils.set_random_seed(0)
        model = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(3, "softmax")])
        # eagerly: one step needs no traced graph (eight traces cost most of this test;
        # recipes train traced in the train tests: digits, and bnas-cifar below)
        recipe.compile(model, epochs=10, steps_per_epoch=5, run_eagerly=True)
        assert model.run_eagerly, name
        expected = recipe.optimizer(5, 10)
        assert type(model.optimizer) is type(expected), name  # the recipe's optimizer ...
        got, want = schedule_of(model.optimizer), schedule_of(expected)
        assert (got is None) == (want is None), name  # ... with its schedule
        if want is not None:
            assert float(got(3)) == pytest.approx(float(want(3))), name
        before = model.get_weights()[0].copy()
        model.fit(
            x,
            np.zeros(8),
            batch_size=8,
            verbose=0,
            callbacks=recipe.callbacks(epochs=10, steps_per_epoch=5, optimizer=model.optimizer),
        )
        assert int(model.optimizer.iterations.numpy()) == 1, name  # one step was applied
        assert not np.allclose(model.get_weights()[0], before), name  # and it trained
    assert get_recipe("bnas-imagenet").label_smoothing == 0.1
    with pytest.raises(ValueError, match="Unknown recipe 'foo'.*bnas-cifar"):
        get_recipe("foo")


def test_recipe_optimizer_takes_steps_per_epoch_then_epochs():
    optimizer = get_recipe("bnas-cifar").optimizer(10, 3)
    assert isinstance(optimizer.learning_rate, OneCycle)
    assert optimizer.learning_rate.total_steps == 30
    restarts = get_recipe("bnas-imagenet").optimizer(7, 250).learning_rate
    assert isinstance(restarts, CosineRestarts) and restarts.period_steps == 50 * 7
    assert get_recipe("bnas-imagenet").optimizer(7, 250).global_clipnorm == 5.0
    radam = get_recipe("meliusnet-imagenet").optimizer(4, 120)
    assert isinstance(radam, RAdam) and float(schedule_of(radam)(0)) == pytest.approx(0.002)
    assert float(schedule_of(radam)(480)) == pytest.approx(0.0, abs=1e-9)
    for name in ("adam", "sgd"):  # 5 warm-up epochs, then cosine
        schedule = schedule_of(get_recipe(name).optimizer(10, 120))
        assert schedule.warmup_steps == 50
        assert float(schedule(0)) < float(schedule(49)) <= float(schedule(50)) + 1e-9
    assert schedule_of(get_recipe("radam").optimizer(10, 120)).warmup_steps == 0
    with pytest.raises(ValueError, match="epochs must be positive"):
        get_recipe("digits").optimizer(10, 0)


def test_smoothed_loss_matches_the_formula():
    loss = get_recipe("bnas-imagenet").loss()
    probs = np.array([[0.7, 0.2, 0.1]], np.float32)
    target = 0.1 / 3 + np.array([0.9, 0, 0])
    assert float(loss(np.array([0]), probs)) == pytest.approx(
        -(target * np.log(probs)).sum(), rel=1e-5
    )


@pytest.mark.slow
def test_one_cycle_recipe_cycles_momentum_and_ramps_drop_path():
    from larq_bnas.zoo.registry import build

    model = build("bnas-mini", input_shape=(8, 8, 3), num_classes=10, **TINY)
    recipe = get_recipe("bnas-cifar")
    recipe.compile(model, epochs=2, steps_per_epoch=4)
    seen = []

    class Probe(tf.keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(float(tf.keras.backend.get_value(self.model.optimizer.momentum)))

    x = np.random.RandomState(0).randn(16, 8, 8, 3).astype("float32")
    y = np.arange(16) % 10
    model.fit(
        x,
        y,
        batch_size=4,
        epochs=2,
        verbose=0,
        callbacks=[
            *recipe.callbacks(epochs=2, steps_per_epoch=4, optimizer=model.optimizer),
            Probe(),
        ],
    )
    schedule = model.optimizer.learning_rate
    assert seen == pytest.approx([schedule.momentum(step) for step in range(8)])
    assert min(seen) < 0.9 < max(seen)
    rates = {
        float(layer.drop_path_rate.numpy())
        for layer in model.submodules
        if hasattr(layer, "drop_path_rate")
    }
    assert rates and all(r == pytest.approx(0.1) for r in rates)  # epoch 1 of 2: 0.2 * 1 / 2
    assert len(model.losses) == len(model.trainable_variables)  # L2 weight decay terms


def test_recompute_keeps_gradients_and_statistics():
    from larq_bnas.training.memory import recompute_binary_ops
    from larq_bnas.zoo.registry import build

    tf.keras.utils.set_random_seed(0)
    plain = build("bnas-mini", input_shape=(12, 12, 3), num_classes=10, **TINY)
    lean = build("bnas-mini", input_shape=(12, 12, 3), num_classes=10, **TINY)
    lean.set_weights(plain.get_weights())
    before = plain.get_weights()
    assert recompute_binary_ops(lean) == recompute_binary_ops(lean) > 0  # idempotent
    x = tf.random.normal((8, 12, 12, 3))
    y = tf.constant(np.arange(8))

    def gradients(model):
        @tf.function
        def step():
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(
                    tf.keras.losses.sparse_categorical_crossentropy(y, model(x, training=True))
                )
            return loss, tape.gradient(loss, model.trainable_variables)

        return step()

    loss_a, grads_a = gradients(plain)
    loss_b, grads_b = gradients(lean)
    assert float(loss_a) == pytest.approx(float(loss_b), rel=1e-6)
    for a, b in zip(grads_a, grads_b, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)
    # BatchNorm moving statistics moved once (not twice) in both
    changed = [not np.array_equal(a, b) for a, b in zip(before, plain.get_weights(), strict=True)]
    assert any(changed)
    for a, b in zip(plain.get_weights(), lean.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)


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
        train(
            "bnas-mini",
            output_dir=out,
            epochs=3,
            input_size=8,
            options=TINY,
            verbose=0,
            extra_callbacks=[_Interrupt()],
        )
    assert [e["epoch"] for e in json.loads((out / "history.json").read_text())] == [1]
    args = ["train", "bnas-mini", *CLI_TINY, "-o", str(out), "--resume"]
    # a resume that would change the results is refused, naming each difference
    refused = CliRunner().invoke(main, [*args, "--epochs", "4", "--seed", "1"])
    assert refused.exit_code == 2, refused.output
    assert "epochs: 3 -> 4, seed: 0 -> 1" in refused.output
    assert len(refused.output.strip().splitlines()) == 1
    # resume from the command line
    result = CliRunner().invoke(main, [*args, "--epochs", "3"])
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    history = json.loads((out / "history.json").read_text())
    assert [e["epoch"] for e in history] == [1, 2, 3]
    for name in (
        "best.weights.h5",
        "final.weights.h5",
        "curves.png",
        "train.log",
        "results.json",
        "state.json",
    ):
        assert (out / name).exists(), name
    log = (out / "train.log").read_text().splitlines()
    assert [line.split()[1] for line in log if line.startswith("epoch")] == ["1", "2", "3"]
    assert [line for line in log if line.startswith("#")][1].endswith("resuming after epoch 1")
    assert 0.0 <= results["test_top1"] <= 1.0 and results["epochs"] == 3
    assert results["test_top1"] > 0.3  # learned something in 3 tiny epochs
    scored = evaluate(
        "bnas-mini", weights=str(out / "final.weights.h5"), input_size=8, options=TINY
    )
    assert scored["top1"] == pytest.approx(results["test_top1"], abs=1e-6)
    # a finished run is returned as it is
    finished = train("bnas-mini", output_dir=out, epochs=3, input_size=8, options=TINY, resume=True)
    assert finished == results


@pytest.mark.slow
def test_cli_train_and_evaluate(tmp_path):
    runner = CliRunner()
    out = tmp_path / "cli"
    result = runner.invoke(
        main,
        [
            "train",
            "bnas-mini",
            "--cells",
            "3",
            "--channels",
            "4",
            "--epochs",
            "1",
            "--flip-stats",
            "--input-size",
            "8",
            "--set",
            "pad_values=0.0",
            "-o",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "test top-1" in result.output and "MiB" in result.output
    results = json.loads((out / "results.json").read_text())
    assert results["input_size"] == 8 and results["options"]["pad_values"] == "0.0"
    assert results["size_mib"] > 0 and results["ops"] > 0 and results["test_split"] == "test"
    history = json.loads((out / "history.json").read_text())
    assert history[0]["flips_max"] >= history[0]["flips_p50"] >= 0  # logged by the counter
    flips = json.loads((out / "flips.json").read_text())
    assert flips[0]["layer"] == "all" and len(flips) > 1  # overall + one row per layer
    assert (out / "flips.csv").read_text().startswith("epoch,layer,p50,p90,p95,p99,max")
    assert (out / "curves.png").stat().st_size > 1000
    result = runner.invoke(
        main,
        [
            "evaluate",
            "bnas-mini",
            "--cells",
            "3",
            "--channels",
            "4",
            "--input-size",
            "8",
            "--set",
            "pad_values=0.0",
            "--weights",
            str(out / "final.weights.h5"),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    scored = json.loads(result.output)
    assert scored["top1"] == pytest.approx(results["test_top1"], abs=1e-6)
    assert scored["examples"] == 359
    # the saved whole model is a MODEL reference too
    result = runner.invoke(main, ["evaluate", str(out / "model.h5")])
    assert result.exit_code == 0, result.output
    assert f"top-1 {results['test_top1']:.4f}" in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--weights", "missing.h5"], "does not exist"),
        (["--dataset", "nosuchset", "--data-dir", "NODATA"], "Unknown dataset 'nosuchset'"),
        (["--dataset", "cifar10", "--data-dir", "NODATA"], "is not prepared in"),
        (["--batch-size", "0"], "0 is not in the range"),
        (["--num-classes", "3"], "the dataset sets the number of classes"),
    ],
)
def test_cli_evaluate_errors(tmp_path, args, message):
    args = [a.replace("NODATA", str(tmp_path / "nodata")) for a in args]
    result = CliRunner().invoke(main, ["evaluate", "bnas-mini", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--recipe", "foo"], "Unknown recipe 'foo'"),
        (["--dataset", "cifar10", "--data-dir", "NODATA"], "is not prepared in"),
        (["--dataset", "nosuchset", "--data-dir", "NODATA"], "Unknown dataset 'nosuchset'"),
        (["--dataset", "folder:NODATA"], "does not exist"),
        (["--weights", "missing.h5"], "does not exist"),
        (["--num-classes", "3"], "the dataset sets the number of classes"),
        (["--epochs", "0"], "0 is not in the range"),
        (["--batch-size", "0"], "0 is not in the range"),
        (["--batch-size", "5000"], "larger than the 1438 training examples"),
        (["--strategy", "ring"], "'ring' is not one of"),
        (["--set", "nonsense"], "is not KEY=VALUE"),
    ],
)
def test_cli_train_errors(tmp_path, args, message):
    args = [a.replace("NODATA", str(tmp_path / "nodata")) for a in args]
    result = CliRunner().invoke(main, ["train", "bnas-mini", "-o", str(tmp_path / "o"), *args])
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_train_refuses_a_model_with_the_wrong_classes(tmp_path):
    from larq_bnas.zoo.registry import build

    model = build("bnas-mini", input_shape=(12, 12, 3), num_classes=3, **TINY)
    with pytest.raises(ValueError, match="3 outputs but the dataset has 10 classes"):
        train(model, output_dir=tmp_path / "o", epochs=1)


def test_cli_help_names_every_recipe():
    result = CliRunner().invoke(main, ["train", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split()).replace("- ", "-")  # (click wraps at hyphens)
    assert all(name in text for name in RECIPES)


def test_cli_refuses_to_overwrite_a_run(tmp_path):
    from larq_bnas.checkpointing import RunDirectory

    RunDirectory(tmp_path / "o", "train")
    result = CliRunner().invoke(main, ["train", "bnas-mini", "-o", str(tmp_path / "o")])
    assert result.exit_code == 2 and "pass --resume" in result.output
