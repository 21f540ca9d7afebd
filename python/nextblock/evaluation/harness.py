"""The evaluation harness: every (concealer, loss pattern) over a set of files, one table row each.

For every file (resampled, mixed to mono or per channel) and every loss spec, one loss mask is
drawn from ``default_rng([seed, crc32(spec), file_index])`` and applied to **every** concealer,
so all concealers see exactly the same losses. Each concealer is run with
:func:`~nextblock.evaluation.simulate.conceal_stream` and scored against the clean file.

Row fields (:func:`evaluate` returns them, ``python -m nextblock.evaluate`` writes them):

=======================  ============================================================================
field                    meaning
=======================  ============================================================================
``concealer``            concealer name
``group``                ``"all"``, or with ``by_folder`` also one row per folder the files lie in
                         (e.g. ``speech``, ``singing``): a table by category in one run
``loss``                 the loss spec string, e.g. ``bernoulli:0.05``
``fpp``                  frames per block
``sample_rate``          Hz
``files``                files evaluated (bad files are skipped and not counted)
``channels``             channel streams evaluated (= files when mixed to mono)
``blocks``               blocks evaluated (all channels)
``lost_blocks``          lost blocks (all channels)
``loss_rate``            ``lost_blocks / blocks``
``lookahead_blocks``     blocks after a lost one the simulated receive buffer holds (0: causal)
``two_sided_share``      of the lost blocks, those the concealer filled from both sides
``snr_db``               SNR on the lost blocks + the cross-fade block after each run, pooled
                         (energies summed over all files before the ratio)
``lsd_db``               log-spectral distance, mean over STFT frames (512/128) touching those blocks
``visqol``               ViSQOL v3 audio-mode MOS-LQO at 48 kHz, mean over streams (null if unavailable
                         or ``visqol=False``)
``plcmos``               PLCMOS v2 at 16 kHz, mean over streams (null unless ``speech=True``)
``thd_n_db``             THD+N of a 20 Hz–20 kHz log sweep played through the same loss spec
                         (null unless ``sine=True``)
``us_per_block_median``  median µs of a ``process`` call on a **lost** block (the concealment cost,
``us_per_block_p99``     comparable with JackTrip's per-glitch PLC time) and its 99th percentile
``us_per_arrived_block_median``, ``us_per_arrived_block_p99``: the same on arrived blocks
=======================  ============================================================================

Non-finite values (an SNR of a perfect concealment, no lost block) are written as ``None``.
"""

from __future__ import annotations

import math
import os
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from ..concealers import ConcealerUnavailable, StreamingConcealer, make_concealer
from . import metrics, perceptual
from .audio import find_audio_files, load_audio, log_sine_sweep
from .loss import LossSpec, parse_loss_spec
from .simulate import conceal_stream, n_blocks_for

#: file index used to seed the sine sweep's loss masks (apart from every real file's)
SINE_STREAM_INDEX = 2**31 - 1


@dataclass
class EvaluationConfig:
    """Settings of one evaluation run (all optional but the lists).

    Attributes
    ----------
    concealers:
        Concealer names (:func:`nextblock.concealers.available_concealers`).
    losses:
        Loss spec strings (:func:`nextblock.evaluation.loss.parse_loss_spec`).
    sample_rate_hz, frames_per_block:
        Stream format.
    seed:
        Seed of the loss masks.
    model_path:
        Model for the ``nextblock`` concealer.
    two_sided_model_path:
        Two-sided model the ``nextblock`` concealer fills one-block gaps with (``None``: the shipped
        ``nextblock-twosided``, or the fusion where this install has none).
    mono:
        Mix files to mono (``False``: every channel is its own stream, same loss mask).
    speech:
        Compute PLCMOS (speech material only).
    visqol:
        Compute ViSQOL (slow: about a second per second of audio and stream).
    sine, sine_duration_s:
        Run the THD+N sweep test, and its length.
    plot_dir, plot_files, plot_events:
        Where to write waveform/spectrogram pictures, for how many files, around how many losses.
    by_folder:
        Also score every folder of files on its own (rows with ``group`` = the folder's name),
        besides all files together (``group`` = ``"all"``).
    lookahead_blocks:
        Blocks after a lost one that are in the receive buffer when it is due
        (:func:`~nextblock.evaluation.simulate.conceal_stream`); 0 keeps the causal harness.
    """

    concealers: list[str]
    losses: list[str]
    sample_rate_hz: int = 48000
    frames_per_block: int = 128
    seed: int = 1
    model_path: str | None = None
    two_sided_model_path: str | None = None
    mono: bool = True
    speech: bool = False
    visqol: bool = True
    sine: bool = False
    sine_duration_s: float = 10.0
    plot_dir: str | None = None
    plot_files: int = 2
    plot_events: int = 3
    by_folder: bool = False
    lookahead_blocks: int = 0


@dataclass
class _Accumulator:
    """Running sums for one (concealer, loss) row."""

    files: set = field(default_factory=set)
    channels: int = 0
    blocks: int = 0
    lost_blocks: int = 0
    two_sided_blocks: int = 0
    signal_energy: float = 0.0
    error_energy: float = 0.0
    lsd_frames: list = field(default_factory=list)
    visqol: list = field(default_factory=list)
    plcmos: list = field(default_factory=list)
    us_lost: list = field(default_factory=list)
    us_arrived: list = field(default_factory=list)
    thd_n_db: float | None = None


@dataclass
class EvaluationResult:
    """What :func:`evaluate` returns.

    Attributes
    ----------
    rows:
        One dict per (concealer, loss), fields as in the module docstring, in
        concealer-major order.
    skipped_files:
        ``(path, reason)`` for every file that could not be evaluated.
    unavailable_concealers:
        ``(name, reason)`` for every concealer that could not be built.
    plots:
        Paths of the pictures written.
    config:
        The configuration, as a dict.
    """

    rows: list[dict]
    skipped_files: list[tuple[str, str]]
    unavailable_concealers: list[tuple[str, str]]
    plots: list[str]
    config: dict


def loss_rng(seed: int, spec: str, stream_index: int) -> np.random.Generator:
    """The generator of the loss mask for one file and one spec (independent of the concealer,
    of the order of ``--loss`` options and of the other files)."""
    return np.random.default_rng([int(seed), zlib.crc32(spec.encode("utf-8")), int(stream_index)])


def evaluate(
    paths: list[str | os.PathLike], config: EvaluationConfig, progress: bool = True, log: Callable[[str], None] = print
) -> EvaluationResult:
    """Evaluate every concealer under every loss spec on the audio files in ``paths``.

    Parameters
    ----------
    paths:
        Files and/or directories (searched recursively for audio). May be empty with
        ``config.sine``.
    config:
        See :class:`EvaluationConfig`.
    progress:
        Show a tqdm progress bar (on stderr).
    log:
        Where one-line messages (skipped files, unavailable concealers) go.

    Returns
    -------
    EvaluationResult

    Raises
    ------
    ValueError
        For a bad loss spec or bad stream settings (before anything runs).
    """
    if config.frames_per_block <= 0 or config.sample_rate_hz <= 0:
        raise ValueError(
            f"need positive --fpp and --sample-rate, got {config.frames_per_block} and {config.sample_rate_hz}"
        )
    if config.lookahead_blocks < 0:
        raise ValueError(f"--lookahead-blocks must be 0 or more, got {config.lookahead_blocks}")
    specs: list[LossSpec] = [parse_loss_spec(spec) for spec in config.losses]
    if not specs:
        raise ValueError("no loss spec given")
    fpp, rate_hz = config.frames_per_block, config.sample_rate_hz

    # one instance per concealer, reset before every stream (a model is loaded once)
    instances: dict[str, StreamingConcealer] = {}
    unavailable: list[tuple[str, str]] = []
    for name in dict.fromkeys(config.concealers):
        try:
            instances[name] = make_concealer(name, fpp, rate_hz, config.model_path, config.two_sided_model_path)
        except ConcealerUnavailable as error:
            unavailable.append((name, str(error)))
            log(f"error: {error} – skipping concealer {name!r}")
    concealers = list(instances)

    files = find_audio_files(paths)
    groups = ["all"] + (sorted({_folder_of(path) for path in files}) if config.by_folder else [])
    acc = {(name, spec.spec, group): _Accumulator() for name in concealers for spec in specs for group in groups}
    skipped: list[tuple[str, str]] = []
    plots: list[str] = []
    units = (len(files) + (1 if config.sine else 0)) * len(specs) * len(concealers)
    bar = _progress_bar(units, progress)
    plotted_files = 0
    for file_index, path in enumerate(files):
        bar.set_description(os.path.basename(path)[:30])
        try:
            audio = load_audio(path, rate_hz, mono=config.mono)
        except ValueError as error:
            skipped.append((path, str(error)))
            log(f"warning: skipping {path}: {error}")
            bar.update(len(specs) * len(concealers))
            continue
        n_blocks = n_blocks_for(audio.shape[1], fpp)
        want_plots = config.plot_dir is not None and plotted_files < config.plot_files
        for spec in specs:
            lost = spec.mask(n_blocks, loss_rng(config.seed, spec.spec, file_index))
            played_first_channel: dict[str, np.ndarray] = {}
            file_groups = ["all", _folder_of(path)] if config.by_folder else ["all"]
            for name in concealers:
                cells = [acc[(name, spec.spec, group)] for group in file_groups]
                for channel in audio:
                    played, us = conceal_stream(
                        channel, instances[name], lost, lookahead_blocks=config.lookahead_blocks
                    )
                    scores = _stream_scores(channel, played, us, lost, config)
                    scores["two_sided_blocks"] = instances[name].two_sided_blocks
                    for cell in cells:
                        cell.files.add(path)
                        _add_scores(cell, scores)
                    played_first_channel.setdefault(name, played)
                bar.update(1)
            if want_plots and lost.any():
                from .plots import plot_losses

                prefix = os.path.join(config.plot_dir, f"{_slug(os.path.basename(path))}__{_slug(spec.spec)}")
                plots.extend(
                    plot_losses(
                        audio[0], played_first_channel, lost, fpp, rate_hz, prefix, max_events=config.plot_events
                    )
                )
        if want_plots:
            plotted_files += 1

    if config.sine and concealers:
        bar.set_description("sine sweep")
        sweep = log_sine_sweep(config.sine_duration_s, rate_hz)
        n_blocks = n_blocks_for(sweep.shape[0], fpp)
        for spec in specs:
            lost = spec.mask(n_blocks, loss_rng(config.seed, spec.spec, SINE_STREAM_INDEX))
            for name in concealers:
                played, _ = conceal_stream(sweep, instances[name], lost, lookahead_blocks=config.lookahead_blocks)
                acc[(name, spec.spec, "all")].thd_n_db = metrics.thd_n_db(sweep, played)
                bar.update(1)
    bar.close()

    rows = [
        _row(name, spec.spec, acc[(name, spec.spec, group)], config, group)
        for group in groups
        for name in concealers
        for spec in specs
        if acc[(name, spec.spec, group)].channels
    ]
    return EvaluationResult(rows, skipped, unavailable, plots, asdict(config))


def _folder_of(path: str) -> str:
    """The name of the folder a file lies in (its category with ``by_folder``)."""
    return os.path.basename(os.path.dirname(os.path.abspath(path)))


def _stream_scores(
    reference: np.ndarray, played: np.ndarray, us_per_block: np.ndarray, lost: np.ndarray, config: EvaluationConfig
) -> dict:
    """One stream's scores (``reference``, ``played``: ``(samples,)``; ``lost``: ``(blocks,)`` bool)."""
    fpp, rate_hz = config.frames_per_block, config.sample_rate_hz
    mask = metrics.concealed_sample_mask(lost, fpp, reference.shape[0])
    signal_energy, error_energy = metrics.energy_sums(reference, played, mask)
    return {
        "blocks": int(lost.shape[0]),
        "lost_blocks": int(lost.sum()),
        "signal_energy": signal_energy,
        "error_energy": error_energy,
        "lsd_frames": metrics.lsd_frames_db(reference, played, mask),
        "us_lost": us_per_block[lost],
        "us_arrived": us_per_block[~lost],
        "visqol": perceptual.visqol_mos(reference, played, rate_hz) if config.visqol else None,
        "plcmos": perceptual.plcmos_mos(played, rate_hz) if config.speech else None,
    }


def _add_scores(cell: _Accumulator, scores: dict) -> None:
    """Add one stream's :func:`_stream_scores` to ``cell``."""
    cell.channels += 1
    cell.blocks += scores["blocks"]
    cell.lost_blocks += scores["lost_blocks"]
    cell.two_sided_blocks += scores.get("two_sided_blocks", 0)
    cell.signal_energy += scores["signal_energy"]
    cell.error_energy += scores["error_energy"]
    cell.lsd_frames.append(scores["lsd_frames"])
    cell.us_lost.append(scores["us_lost"])
    cell.us_arrived.append(scores["us_arrived"])
    if scores["visqol"] is not None:
        cell.visqol.append(scores["visqol"])
    if scores["plcmos"] is not None:
        cell.plcmos.append(scores["plcmos"])


def _row(name: str, spec: str, cell: _Accumulator, config: EvaluationConfig, group: str = "all") -> dict:
    """Turn the sums into a table row (non-finite -> None)."""
    lsd = np.concatenate(cell.lsd_frames) if cell.lsd_frames else np.zeros(0)
    us_lost = np.concatenate(cell.us_lost) if cell.us_lost else np.zeros(0)
    us_arrived = np.concatenate(cell.us_arrived) if cell.us_arrived else np.zeros(0)
    return {
        "concealer": name,
        "group": group,
        "loss": spec,
        "fpp": config.frames_per_block,
        "sample_rate": config.sample_rate_hz,
        "files": len(cell.files),
        "channels": cell.channels,
        "blocks": cell.blocks,
        "lost_blocks": cell.lost_blocks,
        "loss_rate": _finite(cell.lost_blocks / cell.blocks if cell.blocks else math.nan),
        "lookahead_blocks": config.lookahead_blocks,
        "two_sided_share": _finite(cell.two_sided_blocks / cell.lost_blocks if cell.lost_blocks else math.nan),
        "snr_db": _finite(metrics.snr_from_energies(cell.signal_energy, cell.error_energy))
        if cell.lost_blocks
        else None,
        "lsd_db": _finite(float(np.mean(lsd))) if lsd.size else None,
        "visqol": _mean_or_none(cell.visqol),
        "plcmos": _mean_or_none(cell.plcmos),
        "thd_n_db": _finite(cell.thd_n_db) if cell.thd_n_db is not None else None,
        "us_per_block_median": _percentile(us_lost, 50),
        "us_per_block_p99": _percentile(us_lost, 99),
        "us_per_arrived_block_median": _percentile(us_arrived, 50),
        "us_per_arrived_block_p99": _percentile(us_arrived, 99),
    }


def _finite(value: float | None) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def _mean_or_none(values: list) -> float | None:
    good = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(good)) if good else None


def _percentile(values: np.ndarray, q: float) -> float | None:
    return float(np.percentile(values, q)) if values.size else None


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


def _progress_bar(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, disable=not enabled, unit="run", dynamic_ncols=True, leave=False)
