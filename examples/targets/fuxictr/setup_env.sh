#!/usr/bin/env bash
# FuxiCTR's own environment for this example, in examples/targets/fuxictr/.venv: PyTorch
# (the CPU build, 2.13.0), FuxiCTR 2.3.10 with polars<2 (2.3.10 calls an argument polars 2
# removed) and what FuxiCTR pulls (Ray Data, pandas, pyarrow). Rankwright is not in it: the
# agent runs this interpreter through the target's `python:` setting. Idempotent.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$HERE/.venv"
PY="$VENV/bin/python"
say() { echo "[fuxictr env] $*"; }

if "$PY" -c 'import fuxictr, polars, torch; assert fuxictr.__version__ == "2.3.10"' 2>/dev/null; then
    say "ready: $PY"
    exit 0
fi
[[ -x "$PY" ]] || python3 -m venv "$VENV"
PIP=("$PY" -m pip --disable-pip-version-check -q)
say "installing torch==2.13.0 (the CPU build)"
"${PIP[@]}" install torch==2.13.0
"$PY" -c 'import torch, sys; sys.exit(0 if torch.__version__.endswith("+cpu") else 1)' \
    || { say "torch is not a CPU build; stopping (a CUDA build would pull gigabytes)" >&2; exit 1; }
say "installing fuxictr==2.3.10 and polars<2"
"${PIP[@]}" install -c <(echo "torch==$("$PY" -c 'import torch; print(torch.__version__)')") \
    "fuxictr==2.3.10" "polars<2"
"$PY" -c 'import fuxictr, torch; print(f"[fuxictr env] ready: fuxictr {fuxictr.__version__}, torch {torch.__version__}")'
say "next: rankwright plan examples/campaigns/fuxictr_frappe.yaml"
