"""Multi-worker training: two local worker processes on loopback, configured by TF_CONFIG,
train like one worker with the same global batch."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from larq_bnas.errors import InputError
from larq_bnas.training import train
from larq_bnas.training.distribute import STRATEGIES, get_strategy, is_chief, tf_config

MODEL = ["bnas-mini", "--cells", "3", "--channels", "8", "--input-size", "12"]
RUN = ["--epochs", "3", "--batch-size", "64"]


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _env(tf_config=None):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("TF_CONFIG", None)
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return env


def _train(out, strategy, env):
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "larq_bnas",
            "train",
            *MODEL,
            *RUN,
            "--strategy",
            strategy,
            "-o",
            str(out),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _finish(procs, timeout=900):
    outputs = []
    try:
        for p in procs:
            outputs.append(p.communicate(timeout=timeout)[0])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, out in zip(procs, outputs, strict=True):
        assert p.returncode == 0, out[-3000:]
    return outputs


def test_strategy_names():
    assert set(STRATEGIES) == {"auto", "none", "mirrored", "multiworker"}
    assert is_chief(get_strategy("none"))
    with pytest.raises(ValueError, match="Unknown strategy 'ring'.*multiworker"):
        get_strategy("ring")


def test_tf_config_is_read_in_one_place():
    cluster = {"chief": ["a:1"], "worker": ["b:2", "c:3"], "ps": ["d:4"]}
    config = {"cluster": cluster, "task": {"type": "worker", "index": 1}}
    parsed = tf_config({"TF_CONFIG": json.dumps(config)})
    assert (parsed.workers, parsed.task_type, parsed.task_index) == (3, "worker", 1)
    for empty in ({}, {"TF_CONFIG": ""}, {"TF_CONFIG": "{}"}):
        assert tf_config(empty).workers == 0 and tf_config(empty).task_index == 0
    with pytest.raises(InputError, match="TF_CONFIG is not valid JSON"):
        tf_config({"TF_CONFIG": "{cluster"})
    with pytest.raises(InputError, match="must be a JSON object"):
        tf_config({"TF_CONFIG": "[1, 2]"})


def test_a_malformed_tf_config_is_an_input_error_before_any_strategy(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", "{bad")
    for name in ("auto", "multiworker"):
        with pytest.raises(InputError, match="TF_CONFIG is not valid JSON"):
            get_strategy(name)
    assert is_chief(get_strategy("none"))  # not read when no cluster is asked for
    # The only reader: no other module of the package looks at the variable.
    package = Path(__file__).resolve().parent.parent / "larq_bnas"
    readers = [
        str(f.relative_to(package))
        for f in package.rglob("*.py")
        if '"TF_CONFIG"' in f.read_text(encoding="utf-8")
    ]
    assert readers == ["training/distribute.py"]


@pytest.mark.slow
def test_two_local_workers_train_like_one(tmp_path):
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    multi = tmp_path / "multi"
    single = tmp_path / "single"
    workers = [
        _train(
            multi,
            "multiworker",
            _env({"cluster": cluster, "task": {"type": "worker", "index": i}}),
        )
        for i in range(2)
    ]
    # The single worker trains in this process meanwhile (the same job as `larq_bnas train
    # MODEL RUN --strategy none`, without a third TensorFlow import).
    try:
        train(
            "bnas-mini",
            output_dir=single,
            options={"cells": 3, "channels": 8},
            input_size=12,
            epochs=3,
            batch_size=64,
            strategy="none",
            verbose=0,
        )
    except BaseException:
        for p in workers:
            p.kill()
            p.wait()
        raise
    _finish(workers)

    one = json.loads((single / "results.json").read_text())
    two = json.loads((multi / "results.json").read_text())
    assert one["workers"] == 1 and two["workers"] == 2
    # the chief wrote the run's files; worker 1 kept its own records aside
    for name in ("history.json", "best.weights.h5", "final.weights.h5", "curves.png"):
        assert (multi / name).exists(), name
    assert (multi / ".worker1" / "history.json").exists()
    history_one = json.loads((single / "history.json").read_text())
    history_two = json.loads((multi / "history.json").read_text())
    assert len(history_one) == len(history_two) == 3
    # Same data order, same initial weights, same global batch of 64: the runs differ only
    # by BatchNorm statistics over 32 instead of 64 images per replica and by summation
    # order, so they converge alike.
    print(
        f"\nsingle worker: test top-1 {one['test_top1']:.4f}, final train loss "
        f"{history_one[-1]['loss']:.4f}; two workers: test top-1 {two['test_top1']:.4f}, "
        f"final train loss {history_two[-1]['loss']:.4f}"
    )
    assert one["test_top1"] > 0.6 and two["test_top1"] > 0.6
    assert abs(one["test_top1"] - two["test_top1"]) < 0.1
    assert history_two[-1]["loss"] < history_two[0]["loss"]
    assert abs(history_one[-1]["loss"] - history_two[-1]["loss"]) < 0.25
