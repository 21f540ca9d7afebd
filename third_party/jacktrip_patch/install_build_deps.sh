#!/usr/bin/env bash
# Installs what building JackTrip (no GUI, JACK backend) with NextBlock's patch needs, on
# Debian 12 (bookworm) / Ubuntu 22.04+. Run as root (or with sudo).
#   Qt 6 Core+Network (qt6-base-dev, qt6-base-dev-tools for moc), JACK headers, libsamplerate,
#   meson + ninja + pkg-config, patch, and python3-yaml/python3-jinja2 (JackTrip's meson build
#   runs linux/add_changelog_to_metainfo.py).
# jackd2 is only needed to run the tests (preseeded so apt does not ask about real-time limits).
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
echo "jackd2 jackd/tweak_rt_limits boolean false" | $SUDO debconf-set-selections
$SUDO apt-get update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends \
    build-essential cmake pkg-config patch meson ninja-build \
    qt6-base-dev qt6-base-dev-tools libjack-jackd2-dev libsamplerate0-dev \
    python3-yaml python3-jinja2 jackd2
# If `meson`/`python3` come from a virtualenv or pyenv instead of Debian, that Python needs
# PyYAML and Jinja2 too:  python3 -m pip install pyyaml jinja2
python3 -c "import yaml, jinja2" 2>/dev/null || echo "NOTE: python3 lacks yaml/jinja2: python3 -m pip install pyyaml jinja2"
