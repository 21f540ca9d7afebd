"""Records what ``StreamPredictor`` (before the adapters, commit 366a682) played on a fixed input,
for ``tests/test_model_adapters.py``: ``python tests/record_stream_reference.py`` rewrites
``tests/data/stream_reference.npz`` (with the code of that commit: the file is the old class's
output). The test replays the same input through the adapters with :func:`play`."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

#: (frames_per_block, sample_rate_hz, min_refresh_samples, long_term, beyond_horizon)
CASES = [
    (16, 48000, 64, True, "guess"),
    (32, 44100, 64, True, "guess"),
    (64, 48000, 64, True, "guess"),
    (128, 48000, 64, True, "guess"),
    (128, 48000, 0, False, "guess"),
    (256, 96000, 64, True, "guess"),
    (512, 48000, 64, True, "guess"),
    (512, 48000, 0, False, "chain"),
]
STEPS = 12


def signal(rate: int, samples: int) -> np.ndarray:
    """``(2, samples)`` float32: two tones and noise, a quieter second channel."""
    rng = np.random.default_rng(rate)
    n = np.arange(samples)
    a = 0.3 * np.sin(2 * np.pi * 220.0 * n / rate) + 0.1 * np.sin(2 * np.pi * 1310.0 * n / rate)
    b = 0.05 * rng.standard_normal(samples)
    return np.stack([a + 0.02 * rng.standard_normal(samples), b]).astype(np.float32)


def steps(frames: int):
    """(start offset in blocks, concealed samples) per prediction: the stream moving on block by
    block, a burst (concealed samples growing), a jump back."""
    for k in range(STEPS):
        if k == 9:
            yield 3, 0  # a context that is not the cached one moved on
        else:
            yield k, (k - 5) * frames if 5 <= k < 8 else 0


def play(make, model, case) -> np.ndarray:
    """``(STEPS, 2, 2, frames)`` played by ``make(model, frames, rate, min_refresh, beyond, long_term)``."""
    frames, rate, refresh, long_term, beyond = case
    stream = make(model, frames, rate, refresh, beyond, long_term)
    x = signal(rate, stream.context_samples + (STEPS + 2) * frames)
    out = []
    for start, concealed in steps(frames):
        end = stream.context_samples + start * frames
        out.append(np.array(stream.predict(x[:, end - stream.context_samples : end], concealed)))
    return np.stack(out)


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))
    from nextblock.model import default_model_path
    from nextblock.model.runner import BlockPredictor
    from nextblock.model.stream import StreamPredictor

    model = BlockPredictor(default_model_path())

    def make(m, frames, rate, refresh, beyond, long_term):
        return StreamPredictor(m, frames, rate, min_refresh_samples=refresh, beyond_horizon=beyond, long_term=long_term)

    arrays = {f"case{i}": play(make, model, case) for i, case in enumerate(CASES)}
    path = Path(__file__).parent / "data" / "stream_reference.npz"
    np.savez_compressed(path, **arrays)
    print(path, path.stat().st_size, "bytes")


if __name__ == "__main__":
    main()
