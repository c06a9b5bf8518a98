"""Scale-out: pick a ``tf.distribute`` strategy by name.

- ``"none"``: the default strategy (one device);
- ``"mirrored"``: ``MirroredStrategy`` over the local GPUs (or the CPU);
- ``"multiworker"``: ``MultiWorkerMirroredStrategy`` across machines, configured by the
  ``TF_CONFIG`` environment variable of each worker;
- ``"auto"``: multi-worker when ``TF_CONFIG`` names more than one worker, mirrored when
  there is more than one GPU, else none.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import tensorflow as tf

from larq_bnas.errors import InputError

STRATEGIES = ("auto", "none", "mirrored", "multiworker")


@dataclass(frozen=True)
class ClusterConfig:
    """What this library reads from ``TF_CONFIG``: the cluster's size and this task."""

    workers: int = 0  # workers plus the chief, if any
    task_type: str | None = None
    task_index: int = 0


def tf_config(environ: dict[str, str] | None = None) -> ClusterConfig:
    """The one reader of ``TF_CONFIG`` (from ``environ``, default ``os.environ``); an empty
    or missing variable is a single machine. Malformed JSON raises ``InputError``."""
    text = (os.environ if environ is None else environ).get("TF_CONFIG", "") or "{}"
    try:
        config = json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(f"TF_CONFIG is not valid JSON ({err}): {text[:80]!r}") from err
    if not isinstance(config, dict):
        raise InputError(f"TF_CONFIG must be a JSON object, got {text[:80]!r}")
    cluster = config.get("cluster") or {}
    task = config.get("task") or {}
    return ClusterConfig(
        workers=len(cluster.get("worker", [])) + len(cluster.get("chief", [])),
        task_type=task.get("type"),
        task_index=int(task.get("index", 0)),
    )


def get_strategy(name: str = "auto") -> tf.distribute.Strategy:
    """The ``tf.distribute`` strategy called ``name`` (see the module docstring)."""
    if name not in STRATEGIES:
        raise ValueError(
            f"Unknown strategy {name!r}; valid strategies are: {', '.join(STRATEGIES)}"
        )
    cluster = tf_config() if name in ("auto", "multiworker") else None  # bad JSON: exit 2
    if name == "auto":
        if cluster is not None and cluster.workers > 1:
            name = "multiworker"
        elif len(tf.config.list_physical_devices("GPU")) > 1:
            name = "mirrored"
        else:
            name = "none"
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the job's files (worker 0, or the chief)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type == "chief" or (
        task_type == "worker" and task_id == 0 and "chief" not in resolver.cluster_spec().as_dict()
    )
