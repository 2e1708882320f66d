"""The approved strategy as a guardrail, through the real CLI: a step that needs more
budget than is left pauses the campaign and says what it wants approved; the engineer
raises the budget in the spec and approves it, and the campaign finishes. A spec edited in
any other way since approval is refused, and nothing stored changes."""

import os
import subprocess
import sys
import time

import yaml

from rankwright.store import open_store

sys.path.insert(0, os.path.dirname(__file__))
from test_chaos import _phased_campaign  # noqa: E402  (the fast three-phase target)


def _rw(*args):
    env = {**os.environ, "RANKWRIGHT_WAKE_ON_EXIT": "0"}
    return subprocess.run([sys.executable, "-m", "rankwright", *args], capture_output=True, text=True, env=env)


def _edit(path, **changes):
    spec = yaml.safe_load(path.read_text())
    for key, value in changes.items():
        spec[key] = value
    path.write_text(yaml.safe_dump(spec))


def test_a_tiny_budget_confirms_on_stage_one_and_a_spec_edit_is_not_approvable(tmp_path, monkeypatch):
    """100 confirmation seeds on a budget of a few runs: the confirmation is two stages fixed
    in advance, the second only for a borderline winner and as the budget allows, so the
    campaign ends on its first stage and says so, instead of pausing for 97 more seeds (as
    it did before the two-stage rule; a step that needs more than what is left still
    pauses: tests/agent/test_exploitation.py)."""
    path = _phased_campaign(tmp_path / "c", monkeypatch, budget={"amount": 0.0013, "pause_threshold": 1.0},
                            strategy={"trials": 0, "confirmation_seeds": 100})
    store = open_store()
    for _ in range(200):  # wakes until the campaign stops by itself
        woken = _rw("wake", str(path))
        assert woken.returncode == 0, woken.stdout + woken.stderr
        if store.campaign("chaos").status != "approved":
            break
        time.sleep(0.3)
    campaign = store.campaign("chaos")
    assert campaign.status == "finished", woken.stdout
    confirmation = [r for r in store.revisions(campaign.id) if r.body.get("step") == "confirmation"]
    assert len(confirmation) == 1 and all(e["seed"] <= 2 for e in confirmation[0].body["experiments"])
    assert not [r for r in store.revisions(campaign.id) if r.body.get("step") == "confirmation top-up"]
    ended = store.events(campaign.id)[-1].message
    assert "confirmed combo:x3+y2" in ended and "second stage" in ended, ended
    before = len(store.experiments(campaign.id))

    _edit(path, strategy={"trials": 3})  # not approvable: a new campaign
    refused = _rw("approve", str(path), "--yes")
    assert refused.returncode == 2 and "only budget may change" in refused.stdout + refused.stderr
    woken = _rw("wake", str(path))
    assert woken.returncode == 2 and "the spec changed since" in woken.stdout + woken.stderr
    assert len(store.experiments(campaign.id)) == before and store.campaign("chaos").status == "finished"
    spec = yaml.safe_load(path.read_text())
    spec["strategy"] = campaign.spec["strategy"]
    path.write_text(yaml.safe_dump(spec))

    # the finished campaign's proposal, built from its store
    shown = _rw("status", str(path))
    assert shown.returncode == 0 and "estimate at approval against actual" in shown.stdout
    assert "revision" in shown.stdout and "next: rankwright report" in shown.stdout
    reported = _rw("report", str(path))
    assert reported.returncode == 0, reported.stdout + reported.stderr
    folder = tmp_path / "c" / ".rankwright" / "reports" / "chaos"
    markdown = (folder / "report.md").read_text()
    winner = confirmation[0].body["data"]["winner"]
    assert "mkdir -p run && cd run && cp ../proposal.yaml" in markdown and winner in markdown  # its own command
    assert "HOLM over the 3 hypotheses judged in validation" in markdown
    assert markdown.count("data:image") == 0 and (folder / "report.html").read_text().count("data:image/png") >= 2
    # x3 and y2 help on every seed of this job and x5 hurts: the winner merges the two
    assert winner == "combo:x3+y2"
    assert yaml.safe_load((folder / "proposal.yaml").read_text()) == {"x": 3, "y": 2, "train": {"seed": 0, "lr": 0.01}}


def test_a_spec_approved_before_a_field_existed_is_not_read_as_changed(tmp_path, monkeypatch):
    """The store keeps the approved spec with every default written out; a later version
    that adds a field (here the executor's heartbeat) must not refuse every campaign
    approved before it, while a real edit is still refused."""
    from sqlalchemy import update

    from rankwright.store import models as m

    path = _phased_campaign(tmp_path / "c", monkeypatch, executor={"kind": "local"},
                            strategy={"trials": 0, "confirmation_seeds": 3})
    store = open_store()
    campaign = store.campaign("chaos")
    kept = dict(campaign.spec)
    assert kept["executor"]["heartbeat_s"] == 10.0
    kept["executor"] = {k: v for k, v in kept["executor"].items() if k != "heartbeat_s"}  # as an older version wrote it
    with store.session() as s:
        s.execute(update(m.Campaign).where(m.Campaign.id == campaign.id).values(spec=kept))
    woken = _rw("wake", str(path))
    assert woken.returncode == 0, woken.stdout + woken.stderr
    assert store.experiments(campaign.id)
    _edit(path, executor={"kind": "local", "heartbeat_s": 5})
    woken = _rw("wake", str(path))
    assert woken.returncode == 2 and "the spec changed since" in woken.stdout + woken.stderr
    assert "heartbeat_s" in woken.stdout + woken.stderr
