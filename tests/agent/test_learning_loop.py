"""The learning loop end to end on the built-in target: a campaign plans the engine's top
hypotheses, runs them, and its wake turns each finished comparison into an insight; the
next campaign in the same context ranks with that history (what failed is not proposed
again, and says so); insights export and import between stores; `rankwright hypotheses`
explains the ranking, with the diagnosis of the finished baseline."""

import json

import yaml
from typer.testing import CliRunner

from rankwright.agent.naming import experiment_key
from rankwright.cli.main import app
from rankwright.hypotheses.insights import load_all, seeded_effect
from rankwright.store import open_store

runner = CliRunner()
BASE = {"data": {"source": "synthetic", "synthetic": {"rows": 10_000, "structure": "pairwise"}},
        "model": {"hidden_units": [32]}, "train": {"epochs": 2}}


def _spec(tmp_path, name, top_k, seeds=1):
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "base_config": BASE, "budget": {"amount": 2.0}, "max_parallel": 2,
                                    "baseline_seeds": 2, "hypotheses": {"top_k": top_k, "seeds": seeds},
                                    # one validation round and a short tail: this test is about learning
                                    "strategy": {"rounds": 1, "extra_seeds": 0, "full_seeds": 2, "trials": 0,
                                                 "fidelity_check_rejected": 0, "confirmation_seeds": 3,
                                                 "low_fidelity": {"data.train_fraction": 0.5}}}))
    return path


def name_of_techniques(hypotheses):
    return {p["technique"] for p in hypotheses}


def _approve(name):
    store = open_store()
    campaign = store.campaign(name)
    plan_id, _, _ = store.latest_plan(campaign.id)
    store.record_approval(plan_id, "test", 2.0, "cpu_hours", via_yes_flag=True)
    store.set_campaign_status(campaign.id, "approved")
    return store, campaign


def test_a_campaign_learns_insights_and_the_next_one_ranks_with_them(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RANKWRIGHT_DB", raising=False)
    monkeypatch.delenv("RANKWRIGHT_LLM_PROVIDER", raising=False)
    first = _spec(tmp_path, "first", top_k=3, seeds=2)
    planned = runner.invoke(app, ["plan", str(first), "--skip-smoke"])
    assert planned.exit_code == 1 and "no finished baseline yet" in planned.output  # skipped smoke blocks approval
    store, campaign = _approve("first")
    plan = store.latest_plan(campaign.id)[1]
    hypotheses = [p for p in plan["experiments"] if p["name"] != "baseline@low"]
    assert len(hypotheses) == 6 and all(p["source"] in ("knowledge", "diagnosis", "history") for p in hypotheses)
    assert all(p["technique"] and p["reason"].startswith("rank ") for p in hypotheses)

    ran = runner.invoke(app, ["run", str(first), "--interval", "0.5"])
    assert ran.exit_code == 0, ran.output
    learned = [e for e in store.events(campaign.id) if e.kind == "learn"]
    everything = load_all(store)
    assert len(learned) == len(everything) >= 3  # one event per insight, written together
    insights = [i for i in everything if i.context.fidelity == 0.5]  # validation's, at low fidelity
    assert sorted(i.technique for i in insights) == sorted({p["technique"] for p in hypotheses})
    assert all(i.campaign == "first" and i.context.baseline_ne and i.seeds == 2 for i in insights)
    assert {i.author for i in everything} == {"test"}  # who approved the campaign learned them
    # a promoted hypothesis measured again at full fidelity is another insight, in its own context
    assert all(i.context.fidelity == 1.0 and i.technique in name_of_techniques(hypotheses)
               for i in everything if i not in insights)
    # each effect is the seed-paired comparison of the runs the store holds
    by_key = {e.idempotency_key: float(e.metrics["objective"]) for e in store.experiments(campaign.id)}

    def objective(name):
        return {s: by_key[experiment_key("first", name, s)] for s in (1, 2)}

    name_of = {p["technique"]: p["name"] for p in hypotheses}
    for i in insights:
        assert (i.effect, i.effect_se) == seeded_effect(objective(name_of[i.technique]), objective("baseline@low"))

    listed = runner.invoke(app, ["insights", "--model", "dnn", "--json"])
    assert listed.exit_code == 0
    assert sorted(json.loads(line)["technique"] for line in listed.output.splitlines()) == \
        sorted(i.technique for i in everything)
    assert runner.invoke(app, ["insights", "--model", "dcnv2", "--json"]).output == ""  # the filter filters
    assert runner.invoke(app, ["insights"]).exit_code == 0  # the table

    explained = runner.invoke(app, ["hypotheses", str(first), "--dropped"])
    assert explained.exit_code == 0, explained.output
    assert "diagnosis of first/baseline@low/seed1" in explained.output and "rank 1 of" in explained.output
    assert store.hypotheses(campaign.id)  # the ranking is recorded with its reasons

    second = _spec(tmp_path, "second", top_k=40)
    assert runner.invoke(app, ["plan", str(second), "--skip-smoke"]).exit_code == 1
    second_plan = {p["technique"] for p in store.latest_plan(store.campaign("second").id)[1]["experiments"]}
    ranked = runner.invoke(app, ["hypotheses", str(second), "--dropped", "--top", "50"])
    shown = ranked.output.replace("\n", " ")
    for insight in insights:  # nothing measured on the same data in the same context is planned again
        assert insight.technique not in second_plan
        if insight.conclusive_failure:  # a confident "no gain worth having" retires it, and says so
            assert f"dropped {insight.technique}: not proposed again" in shown
        else:
            assert f"dropped {insight.technique}: already measured" in shown


def test_insights_export_and_import_between_stores(tmp_path, monkeypatch):
    from rankwright.hypotheses.insights import Context, Insight, save

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RANKWRIGHT_DB", f"sqlite:///{tmp_path / 'team_a.db'}")
    store = open_store()
    ctx = Context("dnn", rows=8000, fields=24, mean_cardinality=100, baseline_ne=0.9)
    for t, effect in (("dropout_up", -0.01), ("embedding_dim_up", 0.002)):
        save(store, Insight(technique=t, changes={"x": 1}, context=ctx, effect=effect, effect_se=0.001, seeds=2,
                            noise=0.002, cost_factor=1.0, campaign="a"))
    out = tmp_path / "shared.jsonl"
    assert runner.invoke(app, ["insights", "--export", str(out), "--technique", "dropout_up"]).exit_code == 0
    assert len(out.read_text().splitlines()) == 1
    monkeypatch.setenv("RANKWRIGHT_DB", f"sqlite:///{tmp_path / 'team_b.db'}")
    first = runner.invoke(app, ["insights", "--import", str(out)])
    assert first.exit_code == 0 and "imported 1 new" in first.output
    again = runner.invoke(app, ["insights", "--import", str(out)])
    assert "imported 0 new" in again.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n")
    refused = runner.invoke(app, ["insights", "--import", str(bad)])
    assert refused.exit_code == 2 and "line 1" in refused.output
    assert [i.technique for i in load_all(open_store())] == ["dropout_up"]  # nothing lost or added
