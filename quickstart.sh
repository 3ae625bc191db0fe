#!/usr/bin/env bash
# Set up gexbert_sc in a virtual environment and run the demo or the test suite.
#   bash quickstart.sh demo [gexbert-sc demo options]   # set up, train on the bundled data, write results
#   bash quickstart.sh test [pytest options]            # set up, run the test suite (pytest)
#   bash quickstart.sh lint                             # set up, run ruff on src/, tests/ and benchmarks/
set -euo pipefail
cd "$(dirname "$0")"
VENV="${GEXBERT_VENV:-.venv}"
PY="${PYTHON:-python3}"

setup() {
  if [ ! -x "$VENV/bin/python" ]; then
    echo "[setup] creating $VENV" >&2
    "$PY" -m venv "$VENV"
  fi
  local vpy="$VENV/bin/python"
  # Install a pinned torch first where none is present: a bare "torch" requirement would pull a
  # multi-GB CUDA build on Linux. The package itself only asks for torch>=2.2, so a GPU user's
  # existing torch is kept.
  if ! "$vpy" -c "import torch" >/dev/null 2>&1; then
    echo "[setup] installing torch==${GEXBERT_TORCH:-2.13.0}" >&2
    "$vpy" -m pip install -q --disable-pip-version-check "torch==${GEXBERT_TORCH:-2.13.0}" 2> >(grep -v "^WARNING: Location" >&2)
  fi
  echo "[setup] installing gexbert_sc and its dependencies" >&2
  "$vpy" -m pip install -q --disable-pip-version-check -e ".[${GEXBERT_EXTRAS:-test}]" 2> >(grep -v "^WARNING: Location" >&2)
}

cmd="${1:-}"
shift || true
case "$cmd" in
  demo) setup; exec "$VENV/bin/gexbert-sc" demo "$@" ;;
  test) setup; exec "$VENV/bin/python" -m pytest "$@" ;;
  lint) setup; exec "$VENV/bin/ruff" check src tests benchmarks "$@" ;;
  *) echo "usage: bash quickstart.sh demo|test|lint [options]" >&2; exit 2 ;;
esac
