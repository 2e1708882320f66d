"""The hypothesis benchmark's script runs end to end at a toy size and reuses measured runs,
so `make bench` cannot rot unnoticed. (Its figures are a benchmark's business, not a test's.)"""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(tmp_path: Path) -> dict:
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_hypotheses.py"), "--rows", "10000", "--epochs",
                    "1", "--limit", "2", "--structures", "wide", "--baseline-seeds", "2", "--candidate-seeds", "2",
                    "--workdir", str(tmp_path / "runs"), "--out", str(tmp_path / "result")],
                   check=True, capture_output=True, text=True, cwd=ROOT)
    return json.loads((tmp_path / "result.json").read_text())


def test_the_hypothesis_benchmark_runs_and_reuses_measured_runs(tmp_path):
    first = run(tmp_path)
    (row,) = first["rows"]
    assert row["structure"] == "wide" and row["candidates"] == 2
    for key in ("precision_random", "precision_cold", "precision_warm"):
        assert 0.0 <= row[key] <= 1.0
    for side in ("source", "target"):
        runs = row["runs"][side]
        assert [r["seed"] for r in runs["baseline"]] == [1, 2]
        assert len(runs) == 3 and all(len(rs) == 2 for rs in runs.values())
    assert row["warm_spread"] > 0
    assert "Reproduce" in (tmp_path / "result.md").read_text()
    second = run(tmp_path)  # every run is read back from the work folder, so the figures are the same
    again = second["rows"][0]
    assert again["runs"] == row["runs"] and again["precision_warm"] == row["precision_warm"]
