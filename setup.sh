#!/usr/bin/env bash
# Sets up bap-tf on a fresh Debian/Ubuntu machine: the Fashion-MNIST files the offline pocket
# benchmark uses (Debian package dataset-fashion-mnist) and a virtual environment in .venv.
#   bash setup.sh        # the library and its commands
#   bash setup.sh test   # the same plus the test tools
set -euo pipefail
cd "$(dirname "$0")"

if [ ! -d /usr/share/datasets/fashion-mnist ]; then
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist
fi

python=${PYTHON:-python3.11}
command -v "$python" >/dev/null || python=python3
"$python" -c 'import sys; assert sys.version_info[:2] == (3, 11), "bap-tf needs Python 3.11, found " + sys.version'
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
extras=""
[ "${1:-}" = "test" ] && extras="[test]"
.venv/bin/python -m pip install -q -e ".${extras}"
echo "bap-tf is installed in $(pwd)/.venv"
