#!/usr/bin/env bash
# timm's own model tests (`tests/test_models.py` of timm's sdist, never committed here) on the
# T2T-ViT presets, with conftest.py beside this script restricting and classing them.
# Usage: scripts/timm_suite/run.sh PYTHON TIMM_VERSION   (PYTHON has timm, torchvision, pytest)
set -euo pipefail
python=${1:?usage: run.sh PYTHON TIMM_VERSION}
# Absolute, since the suite runs in another folder (not resolved: a venv's python is a link).
python="$(cd "$(dirname "$python")" && pwd)/$(basename "$python")"
version=${2:?usage: run.sh PYTHON TIMM_VERSION}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$python" -m pip download -q --no-binary :all: --no-deps "timm==$version" -d "$work"
tar -xzf "$work/timm-$version.tar.gz" -C "$work" "timm-$version/tests/test_models.py"
cp "$work/timm-$version/tests/test_models.py" "$here/conftest.py" "$work/"
cd "$work"
# -p no:cacheprovider: nothing written beside the downloaded file; -rfE lists each failure.
"$python" -m pytest -q -p no:cacheprovider -rfE test_models.py
