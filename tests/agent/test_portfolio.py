"""The portfolio's policies (pure) and a small portfolio run end to end: campaigns share
the team's budget by priority and its parallel slots fairly, none starves, and no agent
process is alive while runs train."""

import pytest

from rankwright.agent.portfolio import Standing, budget_shares, slot_quota, wake_order


def test_the_team_budget_is_split_by_priority():
    assert budget_shares({"a": 2, "b": 1, "c": 1}, 8.0) == {"a": 4.0, "b": 2.0, "c": 2.0}


def test_every_live_campaign_gets_a_slot_while_there_are_slots_for_all():
    now = [Standing("a", 3, 0, 0.0, False), Standing("b", 1, 0, 0.0, False), Standing("c", 1, 0, 0.0, False),
           Standing("done", 5, 0, 9.0, True)]
    quota = slot_quota(now, 6)
    assert quota["done"] == 0 and min(quota["a"], quota["b"], quota["c"]) >= 1
    assert sum(quota.values()) == 6 and quota["a"] > quota["b"]  # the rest by priority


def test_with_fewer_slots_than_campaigns_the_least_served_go_first_and_none_starves():
    spent = {f"c{i}": 0.0 for i in range(8)}
    served: dict[str, int] = {name: 0 for name in spent}
    for _ in range(40):  # rounds: who gets the 2 slots, each run costing one unit of compute
        now = [Standing(name, 1.0, 0, spent[name], False) for name in spent]
        quota = slot_quota(now, 2)
        assert sum(quota.values()) == 2
        for name, q in quota.items():
            spent[name] += q
            served[name] += q
    assert min(served.values()) == max(served.values()) == 10  # equal priority: equal turns


def test_runs_in_flight_are_never_taken_back_and_priority_buys_more_turns():
    now = [Standing("a", 1, 3, 1.0, False), Standing("b", 1, 0, 0.0, False)]
    assert slot_quota(now, 2)["a"] == 3  # it keeps what it has; b waits for a run to end
    spent = {"hi": 0.0, "lo": 0.0}
    for _ in range(30):
        quota = slot_quota([Standing("hi", 3, 0, spent["hi"], False), Standing("lo", 1, 0, spent["lo"], False)], 1)
        for name, q in quota.items():
            spent[name] += q
    assert spent["hi"] == pytest.approx(3 * spent["lo"], abs=3) and spent["lo"] >= 7  # 3:1, and lo is served


def test_a_portfolio_wake_visits_the_least_served_first():
    now = [Standing("a", 1, 0, 5.0, False), Standing("b", 2, 0, 5.0, False), Standing("c", 1, 0, 0.5, True)]
    assert wake_order(now) == ["b", "a", "c"]


JOB = """
import json, os, sys, time, pathlib, random, yaml
config = yaml.safe_load(open(sys.argv[1]))
run_dir = pathlib.Path(sys.argv[2])
loss = 0.9 - 0.02 * (config["x"] == 3) + random.Random(config["train"]["seed"]).gauss(0, 0.01)
time.sleep(0.3)
(run_dir / "metrics.jsonl").write_text(json.dumps({"event": "result", "loss": loss}) + "\\n")
"""


def _toy_campaign(folder, name, changes):
    import yaml

    target = {
        "name": "toy", "command": ["{python}", "{root}/job.py", "{config}", "{run_dir}"],
        "base_config": {"x": 1, "train": {"seed": 0}},
        "knobs": [{"path": "x", "kind": "int", "low": 0, "high": 10, "default": 1},
                  {"path": "train.seed", "kind": "int", "low": 0, "high": 1000, "default": 0}],
        "metrics": {"file": "metrics.jsonl", "format": "jsonl", "objective": "loss", "direction": "minimize"},
        "cost": {"unit": "cpu_hours", "overhead_seconds": 0.5, "per_row_seconds": 0.001, "rows": 1, "epochs": 1,
                 "size_exponent": 0.0},
    }
    (folder / "job.py").write_text(JOB)
    (folder / "target.yaml").write_text(yaml.safe_dump(target))
    spec = {"name": name, "target": "target.yaml", "budget": {"amount": 1.0}, "baseline_seeds": 2,
            "changes": [{"name": n, "set": s} for n, s in changes],
            "strategy": {"rounds": 1, "extra_seeds": 0, "full_seeds": 2, "trials": 0, "fidelity_check_rejected": 0,
                         "confirmation_seeds": 3, "low_fidelity": {}}}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path.name


@pytest.mark.slow
def test_three_campaigns_run_to_their_proposals_under_one_budget_with_no_agent_alive(tmp_path, monkeypatch):
    import json
    import subprocess
    import sys
    import time

    import yaml

    from rankwright.store import open_store

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RANKWRIGHT_DB", raising=False)
    monkeypatch.delenv("RANKWRIGHT_WAKE_ON_EXIT", raising=False)
    specs = tmp_path / "specs"
    specs.mkdir()
    members = [(_toy_campaign(specs, "ctr", [("x3", {"x": 3})]), 2.0),
               (_toy_campaign(specs, "cvr", [("x5", {"x": 5})]), 1.0),
               (_toy_campaign(specs, "ltv", [("x2", {"x": 2})]), 1.0)]
    (tmp_path / "team.yaml").write_text(yaml.safe_dump({
        "name": "team", "budget": {"amount": 0.2}, "max_parallel": 2,
        "campaigns": [{"spec": f"specs/{s}", "priority": p} for s, p in members]}))

    def rw(*args):
        done = subprocess.run([sys.executable, "-m", "rankwright", *args], capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    planned = rw("portfolio", "plan", "team.yaml")
    assert "portfolio team: 3 campaigns" in planned and "next: rankwright portfolio approve" in planned
    rw("portfolio", "approve", "team.yaml", "--yes", "--by", "lead")
    started = rw("portfolio", "run", "team.yaml", "--detach")
    assert "detached" in started
    store = open_store()
    deadline = time.time() + 240
    while time.time() < deadline and any(store.campaign(n).status != "finished" for n in ("ctr", "cvr", "ltv")):
        time.sleep(1)  # nothing of ours runs: only the runs, whose ends wake the portfolio
    assert [store.campaign(n).status for n in ("ctr", "cvr", "ltv")] == ["finished"] * 3
    budgets = {n: store.campaign(n).spec["budget"]["amount"] for n in ("ctr", "cvr", "ltv")}
    assert budgets["ctr"] == pytest.approx(0.1) and budgets["cvr"] == budgets["ltv"] == pytest.approx(0.05)
    spans = []  # (start, end) of every run of every campaign: never more than the team's 2 at once
    for exit_file in (tmp_path / ".rankwright" / "runs").glob("*/exit.json"):
        record = json.loads(exit_file.read_text())
        spans.append((record["started_at"], record["ended_at"]))
    runs = sum(len(store.experiments(store.campaign(n).id)) for n in ("ctr", "cvr", "ltv"))
    assert len(spans) == runs >= 3 * 4  # every run of every campaign: two baseline and two hypothesis seeds at least
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans], key=lambda x: (x[0], x[1]))
    live = peak = 0
    for _, step in events:
        live += step
        peak = max(peak, live)
    assert peak <= 2
    shown = rw("portfolio", "status", "team.yaml")
    assert all(n in shown for n in ("ctr", "cvr", "ltv")) and "finished" in shown and "team: spent" in shown
    assert max(len(line) for line in shown.splitlines()) <= 80


def _measured(arm, value, fidelity=1.0):
    from types import SimpleNamespace

    return SimpleNamespace(status=SimpleNamespace(value="succeeded"), fidelity=fidelity, metrics={"objective": value},
                           idempotency_key=f"c/{arm}/seed0")


def test_the_status_names_the_best_arm_only_when_one_beats_the_baseline():
    from rankwright.cli.portfolio import _best

    minimize = {"objective": {"direction": "minimize"}}
    better = [_measured("baseline", 0.50), _measured("baseline", 0.52), _measured("wide", 0.49),
              _measured("deep", 0.55), _measured("cheap", 0.30, fidelity=0.25)]
    assert _best("c", better, minimize) == "-3.92% wide"  # the low-fidelity 0.30 is not compared
    worse = [_measured("baseline", 0.50), _measured("wide", 0.51), _measured("deep", 0.55)]
    assert _best("c", worse, minimize) == "none better (closest +2.00%)"
    assert _best("c", worse, {"objective": {"direction": "maximize"}}) == "+10.00% deep"
    assert _best("c", [_measured("wide", 0.4)], minimize) == "-"
    assert _best("c", [_measured("baseline", 0.4)], minimize) == "baseline only"


def test_a_members_own_wake_waits_for_the_portfolios_step(tmp_path, monkeypatch):
    """`rankwright wake` on one member computes its quota of the team's slots: it must not
    do so while a portfolio step (on this machine or another) is submitting."""
    import subprocess
    import sys
    import time

    import yaml

    from rankwright.agent.lease import Lease, portfolio_lease_name
    from rankwright.store import open_store

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RANKWRIGHT_DB", raising=False)
    monkeypatch.setenv("RANKWRIGHT_WAKE_ON_EXIT", "0")
    specs = tmp_path / "specs"
    specs.mkdir()
    spec = _toy_campaign(specs, "ctr", [("x3", {"x": 3})])
    (tmp_path / "team.yaml").write_text(yaml.safe_dump({
        "name": "team", "budget": {"amount": 0.2}, "max_parallel": 2, "campaigns": [{"spec": f"specs/{spec}"}]}))
    for args in (["plan", "team.yaml"], ["approve", "team.yaml", "--yes", "--by", "lead"]):
        done = subprocess.run([sys.executable, "-m", "rankwright", "portfolio", *args], capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
    store = open_store()
    member = tmp_path / ".rankwright" / "portfolios" / "team" / "ctr.yaml"
    with Lease(store, portfolio_lease_name("team"), owner="another-host:4242:feedbeef"):
        agent = subprocess.Popen([sys.executable, "-m", "rankwright", "wake", str(member)],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(4)
        waiting = agent.poll() is None
        submitted_meanwhile = len(store.experiments(store.campaign("ctr").id))
    out, _ = agent.communicate(timeout=120)
    assert waiting and submitted_meanwhile == 0, out
    assert "acting on portfolio team" in out and agent.returncode == 0, out
    assert len(store.experiments(store.campaign("ctr").id)) >= 1


def test_what_ended_campaigns_left_unspent_moves_to_the_live_ones_by_priority():
    from rankwright.agent.portfolio import Share, moved_budgets

    shares = [Share("done", 1.0, 0.4, 0.1, True), Share("big", 2.0, 0.4, 0.3, False), Share("small", 1.0, 0.2, 0.0, False)]
    moved = moved_budgets(shares, 1.0)
    assert moved == {"big": pytest.approx(0.6), "small": pytest.approx(0.3)}  # 0.3 freed, split 2:1
    assert sum(moved.values()) + 0.1 <= 1.0 + 1e-12
    again = [Share(s.name, s.priority, moved.get(s.name, s.budget), s.spent, s.ended) for s in shares]
    assert moved_budgets(again, 1.0) == {}  # applied once, nothing is moved twice
    assert moved_budgets([Share("a", 1.0, 0.5, 0.5, True), Share("b", 1.0, 0.5, 0.2, False)], 1.0) == {}
    assert moved_budgets([Share("a", 1.0, 0.5, 0.1, True)], 1.0) == {}  # no one left to take it


def test_approving_a_portfolio_again_gives_a_finished_campaigns_unspent_share_to_the_others(tmp_path, monkeypatch):
    import subprocess
    import sys
    import time

    import yaml

    from rankwright.store import open_store

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RANKWRIGHT_DB", raising=False)
    monkeypatch.setenv("RANKWRIGHT_WAKE_ON_EXIT", "0")
    specs = tmp_path / "specs"
    specs.mkdir()
    members = [_toy_campaign(specs, "ctr", [("x3", {"x": 3})]), _toy_campaign(specs, "cvr", [("x5", {"x": 5})]),
               _toy_campaign(specs, "ltv", [("x2", {"x": 2})])]
    (tmp_path / "team.yaml").write_text(yaml.safe_dump({
        "name": "team", "budget": {"amount": 0.3}, "max_parallel": 2,
        "campaigns": [{"spec": f"specs/{members[0]}"}, {"spec": f"specs/{members[1]}", "priority": 2},
                      {"spec": f"specs/{members[2]}"}]}))

    def rw(*args, code=0):
        done = subprocess.run([sys.executable, "-m", "rankwright", *args], capture_output=True, text=True, timeout=300)
        assert done.returncode == code, done.stdout + done.stderr
        return done.stdout

    rw("portfolio", "plan", "team.yaml")
    first = rw("portfolio", "approve", "team.yaml", "--yes", "--by", "lead")
    assert "moved" not in first
    folder = tmp_path / ".rankwright" / "portfolios" / "team"
    store = open_store()
    deadline = time.time() + 120
    while store.campaign("ctr").status != "finished":  # one campaign runs to its end alone
        rw("wake", str(folder / "ctr.yaml"))
        assert time.time() < deadline
        time.sleep(0.3)
    rw("stop", str(folder / "ltv.yaml"))  # a person ended another before it ran anything
    before = {n: store.campaign(n).spec["budget"]["amount"] for n in ("ctr", "cvr", "ltv")}
    assert before == {"ctr": pytest.approx(0.075), "cvr": pytest.approx(0.15), "ltv": pytest.approx(0.075)}
    spent_ctr = sum(e.actual_cost + e.prior_cost for e in store.experiments(store.campaign("ctr").id))
    assert 0 < spent_ctr < 0.075
    refused = subprocess.run([sys.executable, "-m", "rankwright", "portfolio", "approve", "team.yaml"],
                             input="n\n", capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1 and store.campaign("cvr").spec["budget"]["amount"] == pytest.approx(0.15)
    moved = rw("portfolio", "approve", "team.yaml", "--yes", "--by", "lead")
    assert "moved" in moved and "unspent budget of ended campaigns" in moved
    after = {n: store.campaign(n).spec["budget"]["amount"] for n in ("ctr", "cvr", "ltv")}
    assert after["ctr"] == before["ctr"] and after["ltv"] == before["ltv"]  # the ended keep their record
    assert after["cvr"] == pytest.approx(0.3 - spent_ctr, abs=2e-6) and after["cvr"] <= 0.3 - spent_ctr
    assert yaml.safe_load((folder / "cvr.yaml").read_text())["budget"]["amount"] == after["cvr"]
    assert store.campaign("cvr").status == "approved" and store.campaign("ctr").status == "finished"
    assert store.campaign("ltv").status == "stopped"
    again = rw("portfolio", "approve", "team.yaml", "--yes", "--by", "lead")
    assert "moved" not in again and store.campaign("cvr").spec["budget"]["amount"] == after["cvr"]
    rw("wake", str(folder / "cvr.yaml"))  # its spec on disk is the approved one
