"""What a wake reads: one that only collects runs of hypotheses (nothing decided yet) reads
the store's index of planned runs and those runs' rows, never the whole campaign, so its
cost does not grow with the campaign's history; the insights it learns are the ones a
whole-campaign pass would learn."""

import os
import sys
import time

import pytest
from typer.testing import CliRunner

from rankwright.cli.main import app
from rankwright.store import Store, open_store

sys.path.insert(0, os.path.dirname(__file__))
from test_budget_wake import _setup  # noqa: E402  (the fast external target, 2 baseline seeds, 8 changes)

runner = CliRunner()


def _runs_ended(store, campaign_id, count, deadline_s=60):
    """Wait until `count` submitted runs have written their exit (they end by themselves)."""
    from rankwright.executors import LocalExecutor, RunStatus

    runs = LocalExecutor(os.path.abspath(".rankwright/runs"), max_parallel=4)
    deadline = time.time() + deadline_s
    while time.time() < deadline:
        handles = [e.executor_handle for e in store.experiments(campaign_id) if e.executor_handle]
        ended = [h for h in handles if runs.status(h).status is not RunStatus.RUNNING
                 and runs.status(h).status is not RunStatus.PENDING]
        if len(ended) >= count:
            return
        time.sleep(0.1)
    raise AssertionError(f"{count} runs did not end within {deadline_s} s")


def test_a_collecting_wake_reads_only_the_index_and_its_runs(tmp_path, monkeypatch):
    path = _setup(tmp_path, monkeypatch, amount=5.0, per_run_seconds=1.0)
    monkeypatch.setenv("RANKWRIGHT_WAKE_ON_EXIT", "0")
    store = open_store()
    campaign = store.campaign("b")
    assert runner.invoke(app, ["wake", str(path)]).exit_code == 0  # submits the baseline's 2 seeds and c0's
    _runs_ended(store, campaign.id, 4)
    assert runner.invoke(app, ["wake", str(path)]).exit_code == 0  # collects them (the baseline: whole pass)
    _runs_ended(store, campaign.id, 8)
    learned_before = len(store.insights())

    def whole(name):
        def refuse(*args, **kwargs):
            raise AssertionError(f"a collecting wake called Store.{name}, which reads the whole campaign")
        return refuse

    with pytest.MonkeyPatch.context() as mp:
        for name in ("experiments", "key_states", "latest_plan", "revisions", "events"):
            mp.setattr(Store, name, whole(name))
        woke = runner.invoke(app, ["wake", str(path)])
    assert woke.exit_code == 0, woke.output + repr(woke.exception)
    rows = store.experiments(campaign.id)
    assert sum(e.status.is_terminal for e in rows) == 8  # c1's and c2's seeds collected
    assert sum(not e.status.is_terminal and e.executor_handle is not None for e in rows) == 4  # four more submitted
    learned = store.insights()[learned_before:]
    assert {i.technique for i in learned} == {"c1", "c2"}  # both seeds ended: learned now, not at the round's end
