#!/usr/bin/env bash
# Sets up bap-tf on a fresh Debian/Ubuntu machine: the Fashion-MNIST files the offline pocket
# benchmark uses (Debian package dataset-fashion-mnist) and a virtual environment in .venv.
#   bash setup.sh        # the library and its commands
#   bash setup.sh test   # the same plus the test tools, g++ (the firmware sources' tests)
#                        # and the [qat] extra in .venv/qat-site, seen by the QAT worker only
set -euo pipefail
cd "$(dirname "$0")"

debian_packages=""
[ -d /usr/share/datasets/fashion-mnist ] || debian_packages="dataset-fashion-mnist"
[ "${1:-}" = "test" ] && ! command -v g++ >/dev/null && debian_packages="$debian_packages g++"
if [ -n "$debian_packages" ]; then
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $debian_packages
fi

python=${PYTHON:-python3.11}
command -v "$python" >/dev/null || python=python3
"$python" -c 'import sys; assert sys.version_info[:2] == (3, 11), "bap-tf needs Python 3.11, found " + sys.version'
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
extras=""
[ "${1:-}" = "test" ] && extras="[test]"
.venv/bin/python -m pip install -q -e ".${extras}"
if [ "${1:-}" = "test" ]; then
  # The [qat] extra pins absl-py 1.x (tensorflow-model-optimization 0.8), so it goes into a folder
  # only the QAT worker process puts on its path (bap_tf/export/qat.py), not into .venv itself.
  # Beside the extra's own packages: tfmot's requirements that .venv lacks or pins otherwise.
  qat=$(.venv/bin/python -c 'import tomllib; print(" ".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["qat"]))')
  .venv/bin/python -m pip install -q --no-deps --upgrade --target .venv/qat-site $qat "absl-py~=1.2" "six~=1.14" mock
fi
echo "bap-tf is installed in $(pwd)/.venv"
