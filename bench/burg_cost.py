"""JackTrip's own concealment cost: its C++ ``BurgAlgorithm`` (train + predict), timed natively.

The class is cut out of JackTrip 2.7.2's source at run time (``src/Regulator.h`` for the
declaration, ``src/Regulator.cpp`` for ``BurgAlgorithm::BurgAlgorithm``, ``train`` and
``predict``), compiled with ``-O3`` (JackTrip's release build: meson ``--buildtype=release``, as
``third_party/jacktrip_patch/CMakeLists.txt`` builds it) into a tiny timing program in a
temporary directory, and run as JackTrip calls it at 128 frames: history ``mUpToNow = 2 * 128 =
256`` samples (order 255), a tail of ``256 + 2 * 128`` samples (two predicted blocks). Nothing
of JackTrip is written into this repository.

Source: ``$NEXTBLOCK_JACKTRIP_SRC`` or ``~/.cache/nextblock/jacktrip/jacktrip-2.7.2`` (fetched by
``python3 -m nextblock.jackio.patched_build``).

    python bench/burg_cost.py            # median / p99 µs per channel per glitch; last line JSON
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

DEFAULT_SOURCE = Path.home() / ".cache" / "nextblock" / "jacktrip" / "jacktrip-2.7.2"

_MAIN = r"""
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>
int main(int argc, char** argv) {
  const int fpp = 128, up_to_now = 2 * fpp, tail = up_to_now + 2 * fpp;
  const int calls = argc > 1 ? std::atoi(argv[1]) : 2000;
  BurgAlgorithm ba(up_to_now);
  std::vector<float> coeffs(up_to_now - 1), prediction(tail), x(48000 * 4);
  unsigned s = 12345;
  for (size_t i = 0; i < x.size(); ++i) {  // two partials and a little noise: music-like
    s = s * 1664525u + 1013904223u;
    x[i] = 0.3f * std::sin(2 * M_PI * 220 * i / 48000.0) + 0.2f * std::sin(2 * M_PI * 331 * i / 48000.0)
         + 0.01f * (float(s >> 8) / float(1u << 24) - 0.5f);
  }
  std::vector<double> us(calls);
  volatile float sink = 0;
  for (int c = 0; c < calls; ++c) {
    const size_t at = (size_t(c) * 977) % (x.size() - tail);
    for (int i = 0; i < tail; ++i) prediction[i] = i < up_to_now ? x[at + i] : 0.0f;
    auto t0 = std::chrono::steady_clock::now();
    ba.train(coeffs, prediction, up_to_now);
    ba.predict(coeffs, prediction, tail);
    auto t1 = std::chrono::steady_clock::now();
    sink = sink + prediction[tail - 1];
    us[c] = std::chrono::duration<double, std::micro>(t1 - t0).count();
  }
  std::sort(us.begin(), us.end());
  std::printf("{\"median_us\": %.3f, \"p99_us\": %.3f, \"calls\": %d}\n", us[calls / 2], us[size_t(calls * 0.99)], calls);
  return 0;
}
"""


def _extract(source_dir: Path) -> str:
    """The BurgAlgorithm declaration and definitions, as C++ text (raises ValueError if not found)."""
    header = (source_dir / "src" / "Regulator.h").read_text()
    impl = (source_dir / "src" / "Regulator.cpp").read_text()
    decl = re.search(r"class BurgAlgorithm\s*\{.*?\n\};", header, re.S)
    start = impl.find("BurgAlgorithm::BurgAlgorithm(")
    end = impl.find("Channel::Channel(", start)
    if not decl or start < 0 or end < 0:
        raise ValueError("BurgAlgorithm not found in Regulator.h/.cpp")
    body = impl[start:end]
    body = body[: body.rfind("//")] if "//****" in body else body
    prelude = "#include <cfloat>\n#include <iostream>\n#include <vector>\nusing std::cout; using std::endl;\n"
    return prelude + decl.group(0) + "\n" + body


def burg_cost(calls: int = 2000, source_dir: Path | None = None) -> dict:
    """Time JackTrip's Burg train + predict (one channel, one glitch). Returns ``{"median_us",
    "p99_us", "calls", "source"}`` or ``{"error": why}`` when the source or a compiler is missing."""
    source_dir = Path(source_dir or os.environ.get("NEXTBLOCK_JACKTRIP_SRC") or DEFAULT_SOURCE)
    if not (source_dir / "src" / "Regulator.cpp").exists():
        return {
            "error": f"JackTrip's source is not at {source_dir} (python3 -m nextblock.jackio.patched_build fetches it)"
        }
    try:
        code = _extract(source_dir) + _MAIN
    except (OSError, ValueError) as err:
        return {"error": f"cannot read BurgAlgorithm from {source_dir}: {err}"}
    with tempfile.TemporaryDirectory(prefix="nb-burg-") as tmp:
        cpp, exe = Path(tmp) / "burg.cpp", Path(tmp) / "burg"
        cpp.write_text(code)
        try:
            subprocess.run(
                ["g++", "-O3", "-std=c++17", "-o", str(exe), str(cpp)],
                check=True,
                capture_output=True,
                text=True,
                timeout=120,
            )
        except FileNotFoundError:
            return {"error": "no g++ to compile JackTrip's BurgAlgorithm"}
        except subprocess.CalledProcessError as err:
            return {"error": f"compiling BurgAlgorithm failed: {err.stderr.strip().splitlines()[-1:]}"}
        out = subprocess.run([str(exe), str(calls)], check=True, capture_output=True, text=True, timeout=300).stdout
    result = json.loads(out)
    result["source"] = str(source_dir)
    return result


def main() -> int:
    result = burg_cost()
    if "error" not in result:
        print(
            f"JackTrip BurgAlgorithm (order 255, 256-sample history, 2 blocks): median {result['median_us']:.1f} us, "
            f"p99 {result['p99_us']:.1f} us per channel per glitch"
        )
    print(json.dumps(result))
    return 0 if "error" not in result else 1


if __name__ == "__main__":
    sys.exit(main())
