"""A compact, portable training corpus: short excerpts, Ogg Vorbis, one folder (for a GPU machine).

:func:`nextblock.model.data.windows_from_audio` reads the unpacked Debian packages (several GB)
and returns float32 windows (a GB at 200,000 windows): neither travels to an accelerator that
takes a few tens of MB. :func:`pack_corpus` draws the same kind of material — every group (root
folder) with its weighted share, files split by recording, each excerpt resampled to a random
training rate — as many short excerpts (many files beat long excerpts for variety), encoded as
mono Ogg Vorbis (~11 kB/s, coding noise ~27 dB below the signal, far below a prediction's
error), with ``corpus.json`` listing each excerpt's split, group, rate and share.
:func:`corpus_windows` cuts any number of fresh random windows out of it, on the other machine.

Layout::

    corpus.json            {"format": "nextblock-corpus/1", "excerpts": [{path, split, group, rate_hz, seconds}], ...}
    train/00000.ogg ...
    validation/00000.ogg ...
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..features.config import FeatureConfig
from .audio_files import by_split_and_group, find_audio_files, read_excerpt
from .examples import predictable, random_windows

CORPUS_FORMAT = "nextblock-corpus/1"
#: libsndfile's Vorbis setting (0 best … 1 smallest): ~11 kB/s mono, ~27 dB SNR on music
VORBIS_COMPRESSION_LEVEL = 0.3


def pack_corpus(
    roots: list[str],
    out_dir: str | Path,
    seconds: dict[str, float],
    rates_hz: tuple[int, ...],
    group_weights: dict[str, float] | None = None,
    excerpt_seconds: float = 3.0,
    seed: int = 0,
    show_progress: bool = True,
) -> dict:
    """Write a corpus of ``seconds[split]`` seconds of excerpts per split into ``out_dir``.

    Each group (root folder) gets ``weight / Σ weights`` of a split's seconds, in excerpts of
    ``excerpt_seconds`` from as many different files as that allows (files drawn at random,
    each once before any twice; a file's excerpts start at independent random offsets). Each excerpt is resampled to a rate drawn from ``rates_hz`` (a rate listed twice
    is drawn twice as often). Returns the manifest (also written to ``corpus.json``).
    """
    out = Path(out_dir)
    if (out / "corpus.json").exists():
        raise FileExistsError(f"{out} already holds a corpus (corpus.json); choose an empty folder")
    import soundfile as sf

    weights = dict(group_weights or {})
    by_split_group, shares = by_split_and_group(find_audio_files(roots), weights)
    rng = np.random.default_rng(seed)
    jobs = []
    for split, wanted_seconds in seconds.items():
        for group, share in shares.items():
            candidates = by_split_group.get((split, group), [])
            if not candidates:
                continue
            count = max(1, math.ceil(wanted_seconds * share / excerpt_seconds))
            # every file once before any file twice (a short group gives several excerpts per file)
            order = np.resize(rng.permutation(len(candidates)), count)
            jobs.extend((split, group, candidates[i].path, int(rates_hz[rng.integers(len(rates_hz))])) for i in order)
    excerpts = []
    counters: dict[str, int] = defaultdict(int)
    for split, group, path, rate_hz in tqdm(jobs, desc="packing excerpts", unit="file", disable=not show_progress):
        audio = read_excerpt(path, rate_hz, excerpt_seconds, rng)
        if audio is None or audio.shape[0] < rate_hz // 10 or not np.any(audio):
            continue
        peak = float(np.max(np.abs(audio)))
        if peak > 1.0:
            audio = audio / peak  # Vorbis clips at full scale; the network works in RMS units anyway
        name = f"{split}/{counters[split]:05d}.ogg"
        counters[split] += 1
        (out / split).mkdir(parents=True, exist_ok=True)
        sf.write(
            str(out / name), audio, rate_hz, format="OGG", subtype="VORBIS", compression_level=VORBIS_COMPRESSION_LEVEL
        )
        excerpts.append(
            {
                "path": name,
                "split": split,
                "group": group,
                "rate_hz": rate_hz,
                "seconds": round(audio.shape[0] / rate_hz, 3),
                "source": str(path),
            }
        )
    manifest = {
        "format": CORPUS_FORMAT,
        "seed": seed,
        "rates_hz": list(rates_hz),
        "group_weights": weights,
        "groups": sorted(shares),
        "excerpt_seconds": excerpt_seconds,
        "excerpts": excerpts,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "corpus.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def read_corpus(corpus_dir: str | Path) -> dict:
    """``corpus.json`` of a packed corpus, checked (``FileNotFoundError``/``ValueError`` with the reason)."""
    path = Path(corpus_dir) / "corpus.json"
    if not path.is_file():
        raise FileNotFoundError(f"no corpus.json in {corpus_dir} (expected the output of pack_corpus)")
    manifest = json.loads(path.read_text())
    if manifest.get("format") != CORPUS_FORMAT:
        raise ValueError(f"{path} has format {manifest.get('format')!r}, expected {CORPUS_FORMAT!r}")
    return manifest


def corpus_windows(
    corpus_dir: str | Path, split: str, count: int, config: FeatureConfig, history_samples: int = 0, seed: int = 0
) -> np.ndarray:
    """``count`` random windows ``(count', history_samples + context + output samples)`` float32 of one split.

    Every group gets its weighted share of the windows (as when packing), spread evenly over its
    excerpts; silent contexts and onsets after silence are left out
    (:func:`~nextblock.model.examples.predictable`), so ``count' <= count``.
    """
    import soundfile as sf

    manifest = read_corpus(corpus_dir)
    window_samples = history_samples + config.context_samples + config.output_samples
    weights = manifest.get("group_weights", {})
    mine = [e for e in manifest["excerpts"] if e["split"] == split]
    if not mine:
        raise ValueError(f"{corpus_dir} has no {split!r} excerpts")
    by_group: dict[str, list] = defaultdict(list)
    for e in mine:
        by_group[e["group"]].append(e)
    total_weight = sum(float(weights.get(g, 1.0)) for g in by_group)
    rng = np.random.default_rng([seed, len(mine)])
    parts = []
    for group, entries in sorted(by_group.items()):
        per_file = math.ceil(count * float(weights.get(group, 1.0)) / total_weight / len(entries))
        for e in entries:
            audio, _ = sf.read(str(Path(corpus_dir) / e["path"]), dtype="float32")
            parts.append(random_windows(audio, per_file, window_samples, history_samples + config.context_samples, rng))
    stacked = np.concatenate(parts)
    stacked = stacked[predictable(stacked, config.context_samples, config.output_samples)]
    return stacked[rng.permutation(stacked.shape[0])[:count]]


def main(argv: list[str] | None = None) -> int:
    """``python -m nextblock.model.corpus OUT --audio DIR ...``: pack a corpus; returns the exit status."""
    import argparse
    import sys

    from ..argtypes import group_weight, int_list

    p = argparse.ArgumentParser(
        prog="python -m nextblock.model.corpus",
        description="Pack training audio into a small, portable corpus (mono Ogg Vorbis excerpts + corpus.json) "
        "for python -m nextblock.train_jax on a machine that has neither the Debian cache nor room for it.",
        epilog="Example (the shipped model's data, ~50 MB): . scripts/training_recipe.sh; python -m nextblock.model.corpus "
        '.device/corpus --audio "${ROOTS[@]}" --group-weight choir=3 --train-seconds 4000',
    )
    p.add_argument("out", help="new folder for the corpus")
    p.add_argument("--audio", nargs="+", required=True, metavar="DIR", help="folders of audio; each is a group")
    p.add_argument(
        "--train-seconds", type=float, default=4000.0, help="training audio (default %(default)s; ~11 kB per second)"
    )
    p.add_argument("--validation-seconds", type=float, default=400.0, help="validation audio (default %(default)s)")
    p.add_argument("--excerpt-seconds", type=float, default=3.0, help="length of each excerpt (default %(default)s)")
    p.add_argument(
        "--rates-hz",
        type=int_list,
        default=[32000, 44100, 44100, 48000, 48000, 88200, 96000],
        metavar="HZ[,HZ...]",
        help="rate drawn per excerpt; a rate listed twice is drawn twice as often (default: the shipped model's)",
    )
    p.add_argument(
        "--group-weight",
        action="append",
        default=[],
        type=group_weight,
        metavar="GROUP=W",
        help="relative share of a group (folder name), default 1; repeatable",
    )
    p.add_argument("--seed", type=int, default=0, help="(default %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    try:
        manifest = pack_corpus(
            args.audio,
            args.out,
            {"train": args.train_seconds, "validation": args.validation_seconds},
            tuple(args.rates_hz),
            dict(args.group_weight),
            args.excerpt_seconds,
            args.seed,
            show_progress=not args.quiet,
        )
    except (FileExistsError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    size = sum(f.stat().st_size for f in Path(args.out).rglob("*.ogg"))
    seconds = sum(e["seconds"] for e in manifest["excerpts"])
    print(
        f"{len(manifest['excerpts'])} excerpts, {seconds / 60:.0f} min of audio, {size / 2**20:.1f} MiB in {args.out}"
    )
    return 0


__all__ = ["CORPUS_FORMAT", "corpus_windows", "main", "pack_corpus", "read_corpus"]


if __name__ == "__main__":
    raise SystemExit(main())
