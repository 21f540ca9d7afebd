"""Choosing the ``tf.distribute`` strategy for training.

* ``auto`` (default): ``MultiWorkerMirroredStrategy`` when ``TF_CONFIG`` describes a cluster,
  ``MirroredStrategy`` when more than one GPU is visible, else the default (one device).
* ``one`` / ``mirrored`` / ``multiworker``: force that strategy.

Batch sizes given to training are *global*: each replica gets ``batch / num_replicas``.
"""

from __future__ import annotations

import json
import os

STRATEGIES = ("auto", "one", "mirrored", "multiworker")


def make_strategy(name: str = "auto"):
    """Return a ``tf.distribute.Strategy`` for ``name`` (one of :data:`STRATEGIES`)."""
    import tensorflow as tf

    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; use one of {', '.join(STRATEGIES)}")
    if name == "auto":
        cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
        if sum(len(v) for v in cluster.values()) > 1:
            name = "multiworker"
        elif len(tf.config.list_physical_devices("GPU")) > 1:
            name = "mirrored"
        else:
            name = "one"
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()
