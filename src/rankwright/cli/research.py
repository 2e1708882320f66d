"""`rankwright hypotheses` and `rankwright insights`: what the research agent proposes for a
campaign and why, and the insights database it learns from (list, filter, export, import)."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

console = Console()


def hypotheses(spec_path: Path, top: int, show_dropped: bool) -> None:
    from rankwright.agent.learning import record_ranking, research
    from rankwright.agent.spec import load_campaign
    from rankwright.store import open_store

    spec, target = load_campaign(spec_path)
    store = open_store()
    root = Path(spec.allowed_paths[0]).resolve()
    ranking, notes = research(spec, target, store, root, use_llm=spec.hypotheses.use_llm)
    campaign = store.campaign(spec.name)
    if campaign is not None:
        record_ranking(store, campaign.id, ranking)
    for note in notes:
        console.print(f"[dim]{note}[/]", highlight=False)
    table = Table(title=f"hypotheses for {spec.name} (ranked by expected gain per unit of cost)")
    for column in ("#", "hypothesis", "source", "changes", "expected NE", "P(beats noise)", "cost x"):
        table.add_column(column, overflow="fold")
    for h in ranking.top(top):
        table.add_row(str(h.rank), h.name, "+".join(h.sources) if h.source != "llm" else "llm",
                      ", ".join(f"{k}={v}" for k, v in h.changes.items()), f"{h.expected_effect * 100:+.2f}%",
                      f"{h.p_success:.2f}", f"{h.cost_factor:.2f}")
    console.print(table)
    for h in ranking.top(top):
        console.print(f"[bold]{h.rank}. {h.name}[/] ({h.source}): {h.reason}", highlight=False)
    if show_dropped:
        for name, why in ranking.dropped:
            console.print(f"[dim]dropped {name}: {why}[/]", highlight=False)
    elif ranking.dropped:
        console.print(f"[dim]{len(ranking.dropped)} dropped (duplicates, conflicts, failed before, no-ops): "
                      "--dropped lists them with reasons[/]")


def insights(technique: str | None, model: str | None, export: Path | None, import_: Path | None,
             as_json: bool = False) -> None:
    from rankwright.hypotheses.insights import export_jsonl, load_all, read_jsonl
    from rankwright.store import open_store

    if import_ is not None:
        incoming = read_jsonl(import_)  # a bad file is refused whole, before the store is touched
        store = open_store()
        added = len(store.add_insights([i.to_json() for i in incoming]))  # one transaction
        console.print(f"imported {added} new insights from {import_} ({len(incoming) - added} already here)")
        return
    store = open_store()
    selected = [i for i in load_all(store, technique) if model is None or i.context.model_family == model]
    if export is not None:
        count = export_jsonl(selected, export)
        console.print(f"exported {count} insights to {export}")
        return
    if as_json:
        import json

        for i in selected:
            print(json.dumps(i.to_json(), sort_keys=True))
        return
    table = Table(title=f"insights ({len(selected)})")
    # "baseline": the baseline's objective, whatever metric the campaign optimised (NE on the built-in target)
    for column in ("technique", "campaign", "model", "rows", "fields", "baseline", "effect", "se", "helped", "cost x"):
        table.add_column(column, overflow="fold")
    for i in selected:
        c = i.context
        table.add_row(i.technique, i.campaign, c.model_family, f"{c.rows:,.0f}", str(c.fields or "-"),
                      "-" if c.baseline_ne is None else f"{c.baseline_ne:.4f}",
                      f"{i.effect * 100:+.2f}%" if i.measured else i.outcome,
                      f"{i.effect_se * 100:.2f}%" if i.measured else "-",
                      ("yes" if i.helped else "no") if i.measured else "-", f"{i.cost_factor:.2f}")
    console.print(table)
