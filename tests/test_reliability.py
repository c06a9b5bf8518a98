"""Reliability (issue 15): resume checks, crash consistency under SIGKILL, exit codes,
untrusted model files, dataset errors that keep their cause."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

from larq_bnas.checkpointing import RunDirectory
from larq_bnas.cli import main
from larq_bnas.errors import InputError, OptionsMismatch, UntrustedModelError


# --- resume checks ----------------------------------------------------------------------
def test_run_resume_reruns_the_changed_stage_and_every_later_one(tmp_path):
    from larq_bnas.pipeline.options import STAGES, PipelineOptions
    from larq_bnas.pipeline.stages import Pipeline

    out = tmp_path / "run"
    Pipeline(out, PipelineOptions(train_epochs=8, data_dir="a"))
    for stage in STAGES:
        (out / f"{stage}.json").write_text("{}")
    for directory in ("search", "train", "deploy", "compare"):
        (out / directory).mkdir()
        (out / directory / "kept.txt").write_text("x")
    logged: list[str] = []
    # data_dir does not change results: nothing is dropped
    Pipeline(out, PipelineOptions(train_epochs=8, data_dir="b"), resume=True, log=logged.append)
    assert all((out / f"{s}.json").exists() for s in STAGES) and not logged
    # train_epochs changes train: train and every later stage run again, search is kept
    Pipeline(out, PipelineOptions(train_epochs=4, data_dir="b"), resume=True, log=logged.append)
    assert logged == [
        "[resume] options changed (train_epochs: 8 -> 4): re-running train and every stage after it"
    ]
    assert [s for s in STAGES if (out / f"{s}.json").exists()] == ["search"]
    assert (out / "search" / "kept.txt").exists()
    assert not any((out / d).exists() for d in ("train", "deploy", "compare"))
    state = json.loads((out / "state.json").read_text())
    assert state["options"]["train_epochs"] == 4  # recorded after the drop
    # threads only changes the benchmark: convert's result stays
    (out / "convert.json").write_text("{}")
    (out / "benchmark.json").write_text("{}")
    Pipeline(out, PipelineOptions(train_epochs=4, threads=1), resume=True, log=logged.append)
    assert (out / "convert.json").exists() and not (out / "benchmark.json").exists()


def test_search_resume_refuses_changed_options(tmp_path):
    from larq_bnas.search import run_search

    kwargs = dict(epochs=1, cells=3, channels=4, batch_size=16, input_size=8, verbose=0)
    RunDirectory(
        tmp_path / "s", "search", {"cells": 3, "channels": 8, "seed": 0, "dataset": "digits"}
    )
    with pytest.raises(OptionsMismatch, match=r"channels: 8 -> 4, seed: 0 -> 2"):
        run_search(tmp_path / "s", resume=True, seed=2, **kwargs)


def test_study_resume_refuses_changed_options(tmp_path):
    from larq_bnas.studies.common import StudyContext

    StudyContext("layer-types", "toy", tmp_path / "st", resume=False, epochs=1)
    with pytest.raises(OptionsMismatch, match=r"epochs: 1 -> 2.*same --scale and --epochs"):
        StudyContext("layer-types", "toy", tmp_path / "st", resume=True, epochs=2)


# --- exit codes ---------------------------------------------------------------------------
def _invoke_with(monkeypatch, error: BaseException):
    import larq_bnas.training

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(larq_bnas.training, "evaluate", fail)
    return CliRunner().invoke(main, ["evaluate", "bnas-mini"])


def test_an_internal_value_error_is_a_failed_job_with_a_log(monkeypatch, tmp_path):
    monkeypatch.setenv("LARQ_BNAS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("LARQ_BNAS_DEBUG", raising=False)
    try:
        tf.reshape(tf.zeros(3), (2, 2))  # a ValueError raised inside TensorFlow
    except (ValueError, tf.errors.InvalidArgumentError) as err:
        internal = err
    result = _invoke_with(monkeypatch, internal)
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Failed: ")
    log = Path(lines[0].rsplit("traceback in ", 1)[1].rstrip(")"))
    assert log.parent == tmp_path / "cache" / "logs"
    assert "Traceback (most recent call last)" in log.read_text()


def test_our_input_errors_exit_2_and_others_exit_1(monkeypatch, tmp_path):
    monkeypatch.setenv("LARQ_BNAS_CACHE_DIR", str(tmp_path / "cache"))
    result = _invoke_with(monkeypatch, InputError("bad value 7; valid: 1-3"))
    assert result.exit_code == 2 and result.output.strip() == "Error: bad value 7; valid: 1-3"
    result = _invoke_with(monkeypatch, RuntimeError("kernel crashed"))
    assert result.exit_code == 1 and result.output.startswith("Failed: RuntimeError: kernel")
    assert "Traceback" not in result.output
    result = _invoke_with(monkeypatch, KeyboardInterrupt())
    assert result.exit_code == 130 and "--resume" in result.output
    assert "Traceback" not in result.output


def test_debug_shows_the_traceback(monkeypatch):
    monkeypatch.setenv("LARQ_BNAS_DEBUG", "1")
    result = _invoke_with(monkeypatch, RuntimeError("kernel crashed"))
    assert isinstance(result.exception, RuntimeError)


def test_ctrl_c_in_a_subprocess_exits_130_with_state_saved(tmp_path):
    out = tmp_path / "run"
    proc = _start_train(out, epochs=30)
    lines = _Lines(proc)
    assert lines.wait_for("EPOCH_BEGIN 1", timeout=240), lines.text()
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=120)
    assert proc.returncode == 130, lines.text()
    assert "Interrupted" in lines.text() and "Traceback" not in lines.text()
    run = RunDirectory(out, "train", resume=True)
    assert run.epochs_done >= 1 and [e["epoch"] for e in run.history()] == list(
        range(1, run.epochs_done + 1)
    )


# --- untrusted model files ------------------------------------------------------------------
@pytest.fixture(scope="module")
def lambda_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("lambda")
    model = tf.keras.Sequential(
        [
            tf.keras.Input((4,)),
            tf.keras.layers.Lambda(lambda x: x * 3.0, name="times_three"),
            tf.keras.layers.Dense(2),
        ]
    )
    model.save(str(root / "lambda.h5"), save_format="h5")
    model.save(str(root / "lambda.keras"))
    plain = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(2)])
    plain.save(str(root / "plain.h5"), save_format="h5")
    return root, model


@pytest.mark.parametrize("name", ["lambda.h5", "lambda.keras"])
def test_models_carrying_code_are_refused_unless_trusted(lambda_files, name):
    from larq_bnas.zoo.references import load_model

    root, model = lambda_files
    with pytest.raises(UntrustedModelError, match="times_three.*--trust-model-code"):
        load_model(str(root / name))
    loaded = load_model(str(root / name), trust_model_code=True)
    x = np.ones((1, 4), np.float32)
    np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), rtol=1e-6)


def test_a_model_without_code_loads(lambda_files):
    from larq_bnas.zoo.references import load_model

    root, _ = lambda_files
    assert load_model(str(root / "plain.h5")).output_shape == (None, 2)


def test_the_cli_flag_trusts_the_file(lambda_files):
    root, _ = lambda_files
    refused = CliRunner().invoke(main, ["summary", str(root / "lambda.h5")])
    assert refused.exit_code == 2 and "--trust-model-code" in refused.output
    trusted = CliRunner().invoke(main, ["summary", str(root / "lambda.h5"), "--trust-model-code"])
    assert trusted.exit_code == 0, trusted.output


# --- datasets -------------------------------------------------------------------------------
def test_tfds_errors_keep_their_cause(monkeypatch, tmp_path):
    import tensorflow_datasets as tfds

    from larq_bnas.training import data

    def broken(name, data_dir=None):
        raise PermissionError(f"cannot read {data_dir}/cifar10")

    monkeypatch.setattr(tfds, "builder", broken)
    with pytest.raises(data.DatasetError, match="PermissionError: cannot read") as info:
        data.info("cifar10", str(tmp_path))
    assert isinstance(info.value.__cause__, PermissionError)
    assert "Unknown dataset" not in str(info.value)


# --- SIGKILL at random instants -------------------------------------------------------------
_CHILD = r"""
import sys
import tensorflow as tf

class Marker(tf.keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        print(f"EPOCH_BEGIN {epoch}", flush=True)

kind, out, epochs, resume = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
if kind == "train":
    from larq_bnas.cli import main
    from larq_bnas.training import trainer
    real = trainer.train
    def train(*args, **kwargs):
        return real(*args, extra_callbacks=[Marker()], **kwargs)
    import larq_bnas.training
    larq_bnas.training.train = train
    args = ["train", "bnas-mini", "--cells", "3", "--channels", "4", "--input-size", "8",
            "--epochs", str(epochs), "--batch-size", "32", "--flip-stats", "-o", out]
    main(args + (["--resume"] if resume else []))
else:
    from larq_bnas.search import run_search
    # three operations: the supernet traces in a third of the time of the paper's 7
    run_search(out, epochs=epochs, cells=3, channels=4, batch_size=16, input_size=8,
               layer_set=("none", "max_pool_3x3", "bin_conv_3x3"),
               steps_per_epoch=8, gammas=(1.0,), resume=resume, verbose=0,
               tensorboard=False, extra_callbacks=[Marker()])
"""


def _env() -> dict[str, str]:
    return {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3"}


def _start(kind: str, out: Path, epochs: int, resume: bool) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, kind, str(out), str(epochs), "1" if resume else "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_env(),
    )


def _start_train(out: Path, epochs: int, resume: bool = False) -> subprocess.Popen:
    return _start("train", out, epochs, resume)


class _Lines:
    """Collect a child's output lines in a thread."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self.thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self.thread.start()

    def _read(self, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float) -> bool:
        end = time.time() + timeout
        while time.time() < end:
            if any(line.startswith(text) for line in self.lines):
                return True
            time.sleep(0.05)
        return False

    def begun(self) -> int:
        """Epochs committed before the last ``EPOCH_BEGIN`` line (0 if none)."""
        marks = [int(line.split()[1]) for line in self.lines if line.startswith("EPOCH_BEGIN")]
        return max(marks, default=0)

    def text(self) -> str:
        return "\n".join(self.lines[-30:])


def kill_and_resume(kind: str, out: Path, epochs: int, kills: int, rng: random.Random) -> list:
    """Run a ``kind`` job ("train" or "search") in ``out``, SIGKILL it ``kills`` times at
    random instants, then resume it to completion. Each kill picks the next epoch to run
    or the one after it, and a random instant up to 2 s after that epoch began
    (mid-epoch, or during a commit). Return one record per kill: (epoch, seconds after it began, epochs committed
    before the kill, epochs kept)."""
    records = []
    for i in range(kills):
        start = RunDirectory(out, kind, resume=True).epochs_done if i else 0
        if start >= epochs:
            break
        target = rng.randint(start, min(start + 1, epochs - 1))
        proc = _start(kind, out, epochs, resume=i > 0)
        lines = _Lines(proc)
        if not lines.wait_for(f"EPOCH_BEGIN {target}", timeout=300):
            proc.kill()
            raise AssertionError(f"{kind} never began epoch {target}:\n{lines.text()}")
        delay = rng.uniform(0.0, 2.0)
        time.sleep(delay)
        before = lines.begun()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        lines.thread.join(timeout=10)
        if proc.returncode == 0:  # finished before the kill
            records.append((target + 1, delay, before, epochs))
            break
        kept = RunDirectory(out, kind, resume=True).epochs_done
        assert before <= kept <= lines.begun() + 1, (before, kept, lines.text())
        records.append((target + 1, delay, before, kept))
    final = _start(kind, out, epochs, resume=True)
    lines = _Lines(final)
    final.wait(timeout=900)
    lines.thread.join(timeout=10)
    assert final.returncode == 0, lines.text()
    return records


def check_files(out: Path) -> int:
    """Every JSON file parses and every weights / checkpoint file reads; return how many."""
    import h5py

    count = 0
    for path in out.rglob("*.json"):
        json.loads(path.read_text())
        count += 1
    for path in out.rglob("*.h5"):
        try:
            with h5py.File(path, "r") as f:
                assert len(f.keys()) > 0, path
        except OSError as err:
            raise AssertionError(f"{path}: {err}") from err
        count += 1
    for index in out.rglob("ckpt.index"):
        assert tf.train.list_variables(str(index)[: -len(".index")]), index
        count += 1
    leftovers = [p for p in out.rglob("*") if p.name.startswith((".staging-", ".trash-"))]
    assert not leftovers, leftovers
    return count


@pytest.mark.slow
def test_sigkill_at_random_instants_then_resume_a_training(tmp_path):
    from larq_bnas.training import evaluate

    out = tmp_path / "train"
    # two kills (each costs a process with its TensorFlow import) at random instants
    records = kill_and_resume("train", out, epochs=3, kills=2, rng=random.Random(15))
    assert records
    history = json.loads((out / "history.json").read_text())
    results = json.loads((out / "results.json").read_text())
    assert [e["epoch"] for e in history] == [1, 2, 3] and results["epochs"] == 3
    state = json.loads((out / "state.json").read_text())
    assert state["epochs_done"] == 3 and state["finished"]
    flips = json.loads((out / "flips.json").read_text())
    assert sorted({row["epoch"] for row in flips}) == [1, 2, 3]
    assert check_files(out) >= 6
    options = {"cells": 3, "channels": 4}
    scored = evaluate(
        "bnas-mini", weights=str(out / "final.weights.h5"), input_size=8, options=options
    )
    assert scored["top1"] == pytest.approx(results["test_top1"], abs=1e-6)


@pytest.mark.slow
def test_sigkill_at_random_instants_then_resume_a_search(tmp_path):
    out = tmp_path / "search"
    records = kill_and_resume("search", out, epochs=3, kills=2, rng=random.Random(16))
    assert records
    results = json.loads((out / "results.json").read_text())
    assert results["epochs_done"] == 3
    assert [e["epoch"] for e in json.loads((out / "history.json").read_text())] == [1, 2, 3]
    assert json.loads((out / "alphas.json").read_text())["epochs"] == [0, 1, 2, 3]
    assert json.loads((out / "alphas_final.json").read_text())["epoch"] == 3
    assert check_files(out) >= 5
