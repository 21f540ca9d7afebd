"""On-line, server-side learning: fine-tune the model on live JackTrip audio and publish better versions.

``python -m nextblock.learn --jacktrip-pid PID`` (see :mod:`nextblock.learn`) wires these parts,
each with one job:

* :mod:`~nextblock.learning.stream`   – :class:`LiveStream` sources: the shared-memory reader
  (a second, non-posting ``Consumer``) and an in-memory array (tests, benchmark)
* :mod:`~nextblock.learning.replay`   – bounded per-channel rings; the newest seconds held back
* :mod:`~nextblock.learning.examples` – replay windows → network inputs/targets (training side's codec)
* :mod:`~nextblock.learning.finetune` – one Keras model + Adam + the training side's loss
* :mod:`~nextblock.learning.validate` – pooled ``snr_db`` on held-back windows, through LiteRT
* :mod:`~nextblock.learning.publish`  – atomic, versioned publishing (``docs/model_publishing.md``)
* :mod:`~nextblock.learning.model_io` – starting model, its Keras weights, export via ``nextblock.export``
* :mod:`~nextblock.learning.priority` – nice level, thread caps, CPU duty cycle
* :mod:`~nextblock.learning.learner`  – :class:`OnlineLearner`, the cycle ingest → train → validate → publish
* :mod:`~nextblock.learning.scenario` – a reproducible changing stream of real audio (tests, benchmark)

Only the runtime-free parts are imported here; TensorFlow loads when a fine-tuner is built.
"""

from .publish import Publisher, read_current, verify_published
from .replay import ReplayBuffer
from .stream import ArrayStream, AudioChunk, LiveStream, SharedMemoryStream

__all__ = [
    "ArrayStream",
    "AudioChunk",
    "LiveStream",
    "Publisher",
    "ReplayBuffer",
    "SharedMemoryStream",
    "read_current",
    "verify_published",
]
