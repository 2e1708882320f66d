"""Memory across campaigns: the arms differ only in their first round, curves are charged alike."""

from __future__ import annotations

import pytest

from rankwright.bench import memory as M
from rankwright.bench import tasks as T


def test_the_ordering_baselines_take_the_sources_best_first_or_a_seeded_random_four() -> None:
    task = M.target_task("wide")
    assert task.data["synthetic"]["seed"] == M.OTHER_GENERATOR_SEED != T.GENERATOR_SEED
    candidates = [tid for tid, _ in M.applicable(task)]
    assert len(candidates) >= 10
    effects = {candidates[5]: -0.03, candidates[2]: -0.01, candidates[7]: +0.02}
    sorted_ = M.ordering("source-sorted", 1, task, effects)
    assert [c["name"] for c in sorted_[:3]] == [candidates[5], candidates[2], candidates[7]]
    assert len(sorted_) == M.ROUND
    assert M.ordering("random", 1, task, effects) == M.ordering("random", 1, task, effects)
    assert M.ordering("random", 1, task, effects) != M.ordering("random", 2, task, effects)
    assert M.ordering("cold", 1, task, effects) is None and M.ordering("warm", 1, task, effects) is None


def test_every_arm_runs_one_round_of_four_with_the_same_budget() -> None:
    task = M.target_task("numeric")
    engine = M.spec(task, "a", 0.05, None)
    fixed = M.spec(task, "b", 0.05, M.ordering("random", 1, task, {}))
    assert engine["hypotheses"]["top_k"] == M.ROUND and len(fixed["changes"]) == M.ROUND
    assert fixed["hypotheses"]["top_k"] == 0
    assert engine["strategy"] == fixed["strategy"] and engine["strategy"]["rounds"] == 1
    assert engine["budget"] == fixed["budget"]


def test_compute_to_reach_is_charged_up_to_the_run_that_reached_it() -> None:
    cold = [{"points": [(4.0, None), (8.0, 0.90), (16.0, 0.85), (30.0, 0.85)], "test_ne": 0.86}] * 2
    warm = [{"points": [(4.0, None), (8.0, 0.84), (31.0, 0.83)], "test_ne": 0.84},
            {"points": [(6.0, 0.88), (32.0, 0.86)], "test_ne": 0.86}]
    s = M.summarise({"cold": cold, "warm": warm}, baseline_ne=0.9)
    assert s["cold_final_valid_ne"] == pytest.approx(0.85)
    assert s["arms"]["cold"]["compute_to_reach"] == pytest.approx(16.0)  # not its whole 30
    assert s["arms"]["warm"]["reached"] == "1/2"
    assert s["arms"]["warm"]["vs_cold"] == pytest.approx(8.0 / 16.0)
    assert s["arms"]["warm"]["test_ne"]["mean"] == pytest.approx(0.85)
    text = M.render({"sets": {"primary": {"seeds": [1, 2], "settings_commit": "x", "commit": "y",
                                          "started": "then", "wall_s": 60, "units": 32,
                                          "results": {"wide": {**s, "source": "wide"}}}}})
    assert max(len(line) for line in text.splitlines() if line.startswith("|")) <= 80
