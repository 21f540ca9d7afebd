#!/usr/bin/env bash
# Installs what building JackTrip (no GUI, JACK backend) with NextBlock's patch needs, on
# Debian 12 (bookworm) / Ubuntu 22.04+: the Debian packages of scripts/apt-packages.txt (the one
# list; scripts/setup.sh installs the same), among them Qt 6 Core+Network, JACK headers,
# libsamplerate, meson + ninja + pkg-config, patch, python3-yaml/python3-jinja2 (JackTrip's meson
# build runs linux/add_changelog_to_metainfo.py) and jackd2 for the tests (preseeded so apt does not
# ask about real-time limits). Run as root (or with sudo).
set -euo pipefail
LIST="$(dirname "$0")/../../scripts/apt-packages.txt"
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
echo "jackd2 jackd/tweak_rt_limits boolean false" | $SUDO debconf-set-selections
$SUDO apt-get update
# shellcheck disable=SC2046
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends $(grep -v '^#' "$LIST")
# If `meson`/`python3` come from a virtualenv or pyenv instead of Debian, that Python needs
# PyYAML and Jinja2 too:  python3 -m pip install pyyaml jinja2
python3 -c "import yaml, jinja2" 2>/dev/null || echo "NOTE: python3 lacks yaml/jinja2: python3 -m pip install pyyaml jinja2"
