"""The client half of the model publishing channel (``docs/model_publishing.md``): hot-swap.

The learner publishes into a directory::

    DIR/model-v<VERSION>.tflite
    DIR/current.json   {"format": "nextblock-published/1", "version": N, "file": "model-vN.tflite",
                        "sha256": "...", "bytes": B, ...}

:class:`ModelWatcher` runs a *loader thread* (niceness +10, never on the hot path) that polls
``current.json``'s identity (mtime, size, inode) about every ``poll_s``. On a new version it

1. parses ``current.json`` (format, a version higher than the running one, a plain file name),
2. checks the model file's size and SHA-256 against it,
3. builds a predictor with ``factory`` (the shipped factory reads and checks the TFLite metadata
   first, then builds a LiteRT interpreter), checks it against the running
   stream (block size, sample rate, context that fits the context ring),
4. warms it up (first calls are slow), and
5. offers it through a one-slot hand-off queue.

The live loop calls :meth:`ModelWatcher.take` between two blocks: it is a non-blocking pop from a
``collections.deque`` (atomic in CPython, no lock), so the swap itself is a reference assignment.
Any failure is logged once per published version, with its reason, and the running model stays.
"""

from __future__ import annotations

import collections
import hashlib
import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass

from .errors import AttachError
from .predictors import Predictor, check_stream_compatible, warm_up

log = logging.getLogger("nextblock.attach.models")

PUBLISHED_FORMAT = "nextblock-published/1"
CURRENT_FILE = "current.json"


class ModelRejected(Exception):
    """A published model that cannot be used; the message says why."""


@dataclass(frozen=True)
class PublishedModel:
    """A checked, loaded and warmed model ready to be swapped in.

    Attributes
    ----------
    version : int
        The published version (``current.json``'s ``version``).
    path : str
        The model file.
    sha256 : str
        Its checksum (as verified).
    predictor : Predictor
        The loaded predictor.
    """

    version: int
    path: str
    sha256: str
    predictor: Predictor

    @property
    def label(self) -> str:
        """How the status line names it: ``v<version>``."""
        return f"v{self.version}"


def read_current(model_dir: str | os.PathLike) -> dict:
    """Parse and check ``DIR/current.json``.

    Returns the parsed mapping with ``version`` (int), ``file`` (a plain file name), ``sha256``
    (lower-case hex) and ``bytes`` (int) checked.

    Raises
    ------
    FileNotFoundError
        No ``current.json`` yet.
    ModelRejected
        Unreadable JSON, another format, or missing/ill-typed fields.
    """
    path = os.path.join(os.fspath(model_dir), CURRENT_FILE)
    with open(path, "rb") as f:
        raw = f.read()
    try:
        doc = json.loads(raw)
    except ValueError as err:
        raise ModelRejected(f"{path} is not valid JSON ({err})") from None
    if not isinstance(doc, dict) or doc.get("format") != PUBLISHED_FORMAT:
        raise ModelRejected(
            f"{path} is not a {PUBLISHED_FORMAT} announcement (format={doc.get('format') if isinstance(doc, dict) else None!r})"
        )
    version, name, digest, size = doc.get("version"), doc.get("file"), doc.get("sha256"), doc.get("bytes")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ModelRejected(f"{path}: 'version' must be an integer, got {version!r}")
    if not isinstance(name, str) or not name or os.path.basename(name) != name or name.startswith("."):
        raise ModelRejected(f"{path}: 'file' must be a plain file name in the directory, got {name!r}")
    if not isinstance(digest, str) or len(digest) != 64 or any(c not in "0123456789abcdefABCDEF" for c in digest):
        raise ModelRejected(f"{path}: 'sha256' must be 64 hex digits, got {digest!r}")
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        raise ModelRejected(f"{path}: 'bytes' must be a positive integer, got {size!r}")
    doc["sha256"] = digest.lower()
    return doc


def verify_file(path: str, expected_bytes: int, expected_sha256: str) -> None:
    """Check a published model's size and SHA-256.

    Raises
    ------
    ModelRejected
        Missing, truncated/grown or checksum-mismatching file.
    """
    try:
        size = os.path.getsize(path)
    except OSError as err:
        raise ModelRejected(f"{path} cannot be read: {err.strerror}") from None
    if size != expected_bytes:
        raise ModelRejected(
            f"{path} has {size} bytes but current.json announces {expected_bytes} (truncated or replaced)"
        )
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    if digest.hexdigest() != expected_sha256:
        raise ModelRejected(
            f"{path}: SHA-256 {digest.hexdigest()[:12]}… does not match current.json's {expected_sha256[:12]}…"
        )


class ModelWatcher:
    """Watches a publishing directory and prepares new models off the hot path.

    Parameters
    ----------
    model_dir:
        The watched directory.
    factory:
        ``factory(path) -> Predictor``: builds a predictor for a model file (the shipped path:
        :func:`~nextblock.runtime.predictors.load_model_predictor`). May raise any exception; it
        is reported as the reason for refusing that version.
    frames_per_block, sample_rate_hz:
        The running stream's geometry; a model for anything else is refused.
    channels:
        Channels the predictor will be called with (for the warm-up).
    max_context_samples:
        Largest context the live loop can assemble (its context ring's capacity).
    running_version:
        Version already running (only strictly newer versions are loaded); ``None``: any.
    poll_s:
        Polling period of ``current.json``.
    warm_calls:
        Predictions run on a new model before it is offered.
    """

    def __init__(
        self,
        model_dir: str | os.PathLike,
        factory: Callable[[str], Predictor],
        frames_per_block: int,
        sample_rate_hz: int,
        channels: int,
        max_context_samples: int,
        running_version: int | None = None,
        poll_s: float = 0.5,
        warm_calls: int = 20,
    ):
        self.model_dir = os.fspath(model_dir)
        self.factory = factory
        self.frames_per_block = frames_per_block
        self.sample_rate_hz = sample_rate_hz
        self.channels = channels
        self.max_context_samples = max_context_samples
        self.running_version = running_version
        self.poll_s = poll_s
        self.warm_calls = warm_calls
        self.rejected = 0
        self.last_error: str | None = None
        self._handoff: collections.deque[PublishedModel] = collections.deque(maxlen=1)
        self._seen_identity: tuple | None = None
        self._refused_versions: set[int] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- loading (loader thread or start-up) ---------------------------------------------------

    def load_version(self, doc: dict) -> PublishedModel:
        """Verify, load, check and warm the model ``doc`` announces. Not real-time.

        Raises
        ------
        ModelRejected
            With the reason.
        """
        path = os.path.join(self.model_dir, doc["file"])
        verify_file(path, doc["bytes"], doc["sha256"])
        try:
            predictor = self.factory(path)
            check_stream_compatible(
                predictor, self.frames_per_block, self.sample_rate_hz, what=f"published model v{doc['version']}"
            )
            if predictor.context_samples > self.max_context_samples:
                raise ModelRejected(
                    f"published model v{doc['version']} reads {predictor.context_samples} samples of context, more than "
                    f"the {self.max_context_samples} this client keeps"
                )
            warm_up(predictor, self.channels, self.warm_calls, pause_s=0.002)
        except ModelRejected:
            raise
        except AttachError as err:
            raise ModelRejected(str(err)) from None
        except Exception as err:
            raise ModelRejected(f"cannot load {path}: {type(err).__name__}: {err}") from None
        return PublishedModel(int(doc["version"]), path, doc["sha256"], predictor)

    def load_current(self) -> PublishedModel | None:
        """Synchronously load what ``current.json`` announces now (start-up).

        Returns ``None`` when nothing is published yet or when the published model is refused
        (logged, counted). Never raises for a bad publication.
        """
        identity = self._identity()
        if identity is None:
            return None
        self._seen_identity = identity
        return self._try_load(offer=False)

    def _identity(self) -> tuple | None:
        try:
            st = os.stat(os.path.join(self.model_dir, CURRENT_FILE))
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _refuse(self, version: int | None, reason: str) -> None:
        if version is not None:
            if version in self._refused_versions:
                return
            self._refused_versions.add(version)
        self.rejected += 1
        self.last_error = reason
        log.warning(
            "refusing published model%s, keeping the running one: %s", "" if version is None else f" v{version}", reason
        )

    def _try_load(self, offer: bool) -> PublishedModel | None:
        try:
            doc = read_current(self.model_dir)
        except FileNotFoundError:
            return None
        except OSError as err:
            self._refuse(None, f"cannot read {CURRENT_FILE}: {err}")
            return None
        except ModelRejected as err:
            self._refuse(None, str(err))
            return None
        version = doc["version"]
        if self.running_version is not None and version <= self.running_version:
            return None
        if version in self._refused_versions:
            return None
        try:
            model = self.load_version(doc)
        except ModelRejected as err:
            self._refuse(version, str(err))
            return None
        self.running_version = model.version
        if offer:
            self._handoff.append(model)
            log.info("model v%d (%s) loaded and warmed; swapping it in", model.version, os.path.basename(model.path))
        return model

    # --- the thread ------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the loader thread (daemon)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="nextblock-model-loader", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop the loader thread (waits up to ``timeout_s``; a load in progress finishes)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def _run(self) -> None:
        try:  # never inherit the hot path's SCHED_FIFO; be the first to yield the CPU to it
            if os.sched_getscheduler(0) != os.SCHED_OTHER:
                os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        except (OSError, AttributeError):
            pass
        while not self._stop.wait(self.poll_s):
            identity = self._identity()
            if identity is None or identity == self._seen_identity:
                continue
            self._seen_identity = identity
            try:
                self._try_load(offer=True)
            except Exception:  # never let the loader die silently
                log.exception("model loader failed unexpectedly; keeping the running model")

    # --- the hot path ----------------------------------------------------------------------------

    def take(self) -> PublishedModel | None:
        """The newest ready model, or ``None``. Non-blocking, lock-free; call between blocks."""
        if not self._handoff:
            return None
        try:
            return self._handoff.popleft()
        except IndexError:
            return None
