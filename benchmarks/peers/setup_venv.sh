#!/usr/bin/env bash
# Create the peers' venv for benchmarks/compare_linear.py from scratch.
#
#   bash benchmarks/peers/setup_venv.sh [VENV_DIR]      (default: benchmarks/.peers-venv)
#   python benchmarks/compare_linear.py --peers-python VENV_DIR/bin/python
#
# torch==2.13.0 goes in first: libpecos depends on torch, and with torch already
# satisfied pip keeps the CPU wheel (found through pip's find-links, e.g. a local
# wheel folder, or the CPU index below) instead of pulling a multi-GB CUDA build.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${1:-$HERE/../.peers-venv}"
PYTHON="${PYTHON:-python3}"
TORCH_CPU_INDEX="${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}"

"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --upgrade pip
# "+cpu" pins the CPU build: from pip's find-links when it has the wheel, else from the CPU index.
if ! "$VENV/bin/python" -m pip install "torch==2.13.0+cpu"; then
    "$VENV/bin/python" -m pip install "torch==2.13.0+cpu" --extra-index-url "$TORCH_CPU_INDEX"
fi
"$VENV/bin/python" -m pip install -r "$HERE/requirements.txt"
"$VENV/bin/python" - <<'PY'
from importlib.metadata import version
import numpy, pecos, napkinxc, omikuji, fasttext, torch  # noqa: F401  (each must import)
print("peers venv ready:", ", ".join(f"{p} {version(p)}" for p in
      ("numpy", "scipy", "torch", "libpecos", "napkinxc", "omikuji", "fasttext-wheel")))
PY
