#!/usr/bin/env bash
# Create (idempotently) the benchmark virtual environment `.venv-bench` in the repo root.
#
# It holds, besides our own package (editable install), the peers that `make bench`
# compares against: FuxiCTR 2.3.10 (pip `fuxictr`) and scikit-learn.
#
# Order matters:
#   1. torch==2.13.0 FIRST, by plain `pip install torch==2.13.0`: on these machines that
#      resolves to the CPU build on local disk (2.13.0+cpu). We then check that the
#      installed version ends with "+cpu" and abort otherwise (a CUDA torch from the
#      index would pull gigabytes of nvidia-* wheels).
#   2. fuxictr==2.3.10 together with polars<2: fuxictr 2.3.10 calls
#      `polars.scan_csv(dtypes=...)`, removed in polars 2.0. It also pulls ray[data].
#      All later installs run under a constraints file pinning torch to the installed
#      build so nothing can swap it.
#   3. scikit-learn, then `pip install -e .` (our package, rankwright).
#
# A stamp file (.venv-bench/.bench-stamp) records a hash of this script and of
# pyproject.toml; when both match, the script does nothing.
#
# Usage: bash benchmarks/setup_bench_env.sh        (from anywhere)
#        FORCE=1 bash benchmarks/setup_bench_env.sh (reinstall even if stamped)
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${BENCH_VENV:-$REPO_ROOT/.venv-bench}"
PYTHON="${PYTHON:-python3}"
STAMP="$VENV/.bench-stamp"

say() { echo "[setup_bench_env] $*"; }

hash_inputs() {
    cat "${BASH_SOURCE[0]}" "$REPO_ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1
}
WANT="$(hash_inputs)"

if [[ "${FORCE:-0}" != "1" && -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" && -x "$VENV/bin/python" ]]; then
    say "up to date: $VENV (stamp $WANT); set FORCE=1 to reinstall"
    exit 0
fi

if [[ ! -x "$VENV/bin/python" ]]; then
    say "creating venv $VENV with $($PYTHON --version 2>&1)"
    "$PYTHON" -m venv "$VENV"
else
    say "reusing existing venv $VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check)

# 1. torch first (CPU build from local disk)
if "$PY" -c 'import sys, torch; sys.exit(0 if torch.__version__ == "2.13.0+cpu" else 1)' 2>/dev/null; then
    say "torch 2.13.0+cpu already installed"
else
    say "installing torch==2.13.0 (expecting the local CPU build)"
    "${PIP[@]}" install torch==2.13.0
fi
TORCH_VERSION="$("$PY" -c 'import torch; print(torch.__version__)')"
if [[ "$TORCH_VERSION" != *+cpu ]]; then
    say "ERROR: torch $TORCH_VERSION is not a CPU build (expected 2.13.0+cpu); aborting" >&2
    exit 1
fi
say "torch $TORCH_VERSION OK"

CONSTRAINTS="$VENV/bench-constraints.txt"
echo "torch==$TORCH_VERSION" > "$CONSTRAINTS"

# 2. FuxiCTR peer (+ polars<2, see header)
say "installing fuxictr==2.3.10 and polars<2 (pulls ray[data], pandas, pyarrow, h5py, ...)"
"${PIP[@]}" install -c "$CONSTRAINTS" "fuxictr==2.3.10" "polars<2"

# 3. scikit-learn and our package
say "installing scikit-learn"
"${PIP[@]}" install -c "$CONSTRAINTS" scikit-learn
say "installing rankwright in editable mode from $REPO_ROOT"
"${PIP[@]}" install -c "$CONSTRAINTS" -e "$REPO_ROOT"

say "checking imports"
"$PY" - <<'EOF'
import torch, polars, fuxictr, sklearn
assert torch.__version__.endswith("+cpu"), torch.__version__
assert polars.__version__.split(".")[0] != "2", polars.__version__
print(f"[setup_bench_env] torch {torch.__version__}, fuxictr {fuxictr.__version__}, "
      f"polars {polars.__version__}, scikit-learn {sklearn.__version__}")
try:
    import rankwright
    print(f"[setup_bench_env] rankwright importable from {rankwright.__file__}")
except Exception as exc:  # our package may be incomplete while it is being built
    print(f"[setup_bench_env] WARNING: rankwright not importable: {exc!r}")
EOF

echo "$WANT" > "$STAMP"
say "done: $VENV"
