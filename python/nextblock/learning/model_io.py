"""Where the learner meets the training side: the starting model, its Keras twin, and export.

The clients run ``.tflite`` files; fine-tuning needs the same network as a Keras model with the
same weights. This module finds both:

1. **What the clients run now** (:func:`resolve_current`): the version in ``<model-dir>/current.json``
   if the learner already published (checked against its SHA-256), else ``--model`` or the shipped
   model (:func:`nextblock.model.default_model_path`).
2. **Its Keras weights** (:func:`resolve_keras_weights`): ``--init-weights`` if given; for a
   version the learner published, ``<model-dir>/learner-state/model-v<N>.weights.h5``; for a
   shipped/exported model, ``<model>.weights.h5`` or ``<stem>.weights.h5`` next to it.
3. **The Keras model** (:func:`build_keras_model`): the architecture and feature sizes stored in
   the ``.tflite``'s metadata (written by ``nextblock.export``), rebuilt with
   :func:`nextblock.model.architecture.build_model`, weights loaded.
4. **Export** (:func:`export_tflite`): ``nextblock.export``'s own conversion, metadata and
   LiteRT-vs-Keras check, so a published model is indistinguishable from an offline export.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from ..features.config import FeatureConfig
from .learner import CurrentModel
from .publish import STATE_DIR, read_current, verify_published


class StartingModelError(Exception):
    """The starting model or its Keras weights cannot be found or do not match (one-line message)."""


@dataclass(frozen=True)
class StartingPoint:
    """What the learner starts from.

    Attributes
    ----------
    current:
        The ``.tflite`` the clients run and its published version (``None``: shipped/given model).
    metadata:
        That file's NextBlock metadata.
    features:
        Its feature sizes.
    architecture:
        Its ``ArchitectureConfig`` as a dict (from the metadata).
    weights:
        Keras ``.weights.h5`` matching it.
    """

    current: CurrentModel
    metadata: dict
    features: FeatureConfig
    architecture: dict
    weights: Path


def features_from_metadata(metadata: dict) -> FeatureConfig:
    """The :class:`FeatureConfig` recorded in a model's metadata."""
    return FeatureConfig.from_dict(metadata)


def resolve_current(model_dir: str | os.PathLike, model_path: str | os.PathLike | None = None) -> CurrentModel:
    """The model the clients run: the current publication in ``model_dir``, else ``model_path``,
    else the shipped model.

    Raises
    ------
    StartingModelError
        A broken publication (bad ``current.json``, checksum mismatch) or no model at all.
    """
    try:
        published = read_current(model_dir)
        if published is not None:
            verify_published(published)
            return CurrentModel(published.path, published.version)
    except ValueError as err:
        raise StartingModelError(f"the publication in {model_dir} is broken: {err}") from None
    if model_path is not None:
        path = Path(model_path)
        if not path.is_file():
            raise StartingModelError(f"model not found: {path}")
        return CurrentModel(path, None)
    from ..model import default_model_path

    try:
        return CurrentModel(Path(default_model_path()), None)
    except FileNotFoundError as err:
        raise StartingModelError(f"no shipped model ({err}); pass --model PATH") from None


def resolve_keras_weights(
    current: CurrentModel, model_dir: str | os.PathLike, init_weights: str | os.PathLike | None
) -> Path:
    """Keras weights that match ``current`` (see the module docstring for the search order:
    for a published version its learner-state file first, then ``init_weights``, then siblings)."""
    candidates = []
    if current.version is not None:
        candidates.append(Path(model_dir) / STATE_DIR / f"model-v{current.version}.weights.h5")
    if init_weights is not None:
        if not Path(init_weights).is_file():
            raise StartingModelError(f"--init-weights file not found: {init_weights}")
        candidates.append(Path(init_weights))
    candidates += [
        current.path.with_name(current.path.name + ".weights.h5"),
        current.path.with_name(current.path.stem + ".weights.h5"),
    ]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise StartingModelError(
        f"no Keras weights for {current.path} (looked for {', '.join(c.name for c in candidates)}); "
        "pass --init-weights RUN_DIR/best.weights.h5 of the training run it was exported from"
    )


def resolve_baseline(
    start: StartingPoint,
    model_dir: str | os.PathLike,
    model_path: str | os.PathLike | None = None,
    init_weights: str | os.PathLike | None = None,
) -> tuple[Path, list] | None:
    """The general model to fall back to – ``model_path`` or the shipped model – and its Keras
    weights (a list of arrays), or ``None`` when it or its weights cannot be found or its
    architecture differs from ``start``'s. Never raises."""
    from ..model.metadata import read_metadata

    try:
        if start.current.version is None:
            base, weights = start.current, start.weights
        else:
            if model_path is not None:
                base = CurrentModel(Path(model_path), None)
            else:
                from ..model import default_model_path

                base = CurrentModel(Path(default_model_path()), None)
            if read_metadata(base.path).get("architecture") != start.metadata.get("architecture"):
                return None
            weights = resolve_keras_weights(base, model_dir, init_weights)
        return base.path, build_keras_model(start.features, start.architecture, weights).get_weights()
    except (StartingModelError, FileNotFoundError, ValueError, OSError):
        return None


def resolve_starting_point(
    model_dir: str | os.PathLike,
    model_path: str | os.PathLike | None = None,
    init_weights: str | os.PathLike | None = None,
) -> StartingPoint:
    """:func:`resolve_current` + its metadata + :func:`resolve_keras_weights`."""
    from ..model.metadata import read_metadata

    current = resolve_current(model_dir, model_path)
    try:
        metadata = read_metadata(current.path)
    except (FileNotFoundError, ValueError) as err:
        raise StartingModelError(str(err)) from None
    if "architecture" not in metadata:
        raise StartingModelError(
            f"{current.path} has no 'architecture' in its metadata (export it with nextblock.export)"
        )
    return StartingPoint(
        current,
        metadata,
        features_from_metadata(metadata),
        dict(metadata["architecture"]),
        resolve_keras_weights(current, model_dir, init_weights),
    )


def build_keras_model(features: FeatureConfig, architecture: dict, weights: str | os.PathLike | None = None):
    """The Keras network for ``architecture`` (a dict of ``ArchitectureConfig``), weights loaded if given.

    Raises
    ------
    StartingModelError
        The weights do not fit the architecture.
    """
    from ..model.architecture import ArchitectureConfig, build_model

    model = build_model(features, ArchitectureConfig.from_dict(architecture))
    if weights is not None:
        try:
            model.load_weights(os.fspath(weights))
        except (ValueError, OSError) as err:
            raise StartingModelError(
                f"{weights} does not fit the model's architecture: {str(err).splitlines()[0]}"
            ) from None
    return model


class TFLiteExporter:
    """Exports Keras candidates with ``nextblock.export``'s converter, metadata and parity check.

    Parameters
    ----------
    features, architecture:
        The model's sizes (as in the starting model's metadata).
    name:
        Metadata ``name`` of published models.
    tolerance:
        Max |LiteRT − Keras| allowed on ``nextblock.export``'s check inputs.
    sample_rates_hz:
        The starting model's ``sample_rates_hz`` (metadata), kept in every published model so it
        serves the same rates and block sizes (empty: a model of one rate and block size).
    guess_weight:
        The starting model's ``guess_weight`` (metadata), kept in every published model: a
        candidate is scored and played with the same blend of the Burg guess as the model it
        would replace.

    Call ``exporter(keras_model, path)``; raises ``RuntimeError`` when LiteRT and Keras disagree.
    """

    def __init__(
        self,
        features: FeatureConfig,
        architecture: dict,
        name: str = "nextblock-online",
        tolerance: float = 1e-3,
        sample_rates_hz: tuple[int, ...] = (),
        guess_weight: float = 0.0,
    ):
        from .. import export

        self.sample_rates_hz = tuple(int(r) for r in sample_rates_hz)
        self.guess_weight = float(guess_weight)
        self._export = export
        self.features = features
        self.architecture = dict(architecture)
        self.name = name
        self.tolerance = tolerance
        self._check_inputs = export.check_inputs(features, count=16)
        self.exports = 0

    def __call__(self, model, path: str | os.PathLike) -> None:
        from ..model.architecture import count_macs
        from ..model.metadata import embed_metadata

        data = self._export.convert(model)
        difference = self._export.max_difference(model, data, self._check_inputs)
        if difference > self.tolerance:
            raise RuntimeError(f"exported candidate differs from Keras by {difference:.2e} > {self.tolerance:.1e}")
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d%H%M%S")
        config = {
            "architecture": self.architecture,
            "result": {},
            "training": {"online": True, "train_rates_hz": list(self.sample_rates_hz)},
        }
        metadata = self._export.build_metadata(
            config,
            self.features,
            self.name,
            f"online.{stamp}",
            int(model.count_params()),
            count_macs(model),
            "online fine-tuning",
            guess_weight=self.guess_weight,
        )
        Path(path).write_bytes(embed_metadata(data, metadata))
        self.exports += 1
