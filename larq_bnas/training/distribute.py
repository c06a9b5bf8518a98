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

import tensorflow as tf

STRATEGIES = ("auto", "none", "mirrored", "multiworker")


def _workers() -> int:
    config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
    cluster = config.get("cluster", {})
    return len(cluster.get("worker", [])) + len(cluster.get("chief", []))


def get_strategy(name: str = "auto") -> tf.distribute.Strategy:
    """The ``tf.distribute`` strategy called ``name`` (see the module docstring)."""
    if name not in STRATEGIES:
        raise ValueError(
            f"Unknown strategy {name!r}; valid strategies are: {', '.join(STRATEGIES)}"
        )
    if name == "auto":
        if _workers() > 1:
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
