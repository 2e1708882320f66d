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
    from rich import box

    # compact, to read at 80 columns; the context's details (fields, the baseline's objective)
    # are in --json
    table = Table(title=f"insights ({len(selected)})", box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1),
                  collapse_padding=True)
    for column, justify in (("technique", "left"), ("campaign (by)", "left"), ("model", "left"), ("rows", "right"),
                            ("effect ± se", "right"), ("helped", "left"), ("cost", "right")):
        wide = column in ("technique", "campaign (by)")  # the rest keep their few characters whole
        table.add_column(column, justify=justify, overflow="fold", no_wrap=not wide)
    for i in selected:
        c = i.context
        table.add_row(i.technique, f"{i.campaign} ({i.author})" if i.author else i.campaign, c.model_family,
                      _short(c.rows),
                      f"{i.effect * 100:+.2f}±{i.effect_se * 100:.2f}%" if i.measured else i.outcome,
                      ("yes" if i.helped else "no") if i.measured else "-", f"x{i.cost_factor:.2f}")
    console.print(table)
    by: dict[str, tuple[int, set[str]]] = {}
    for i in selected:
        count, campaigns = by.get(i.author or "unknown", (0, set()))
        by[i.author or "unknown"] = (count + 1, campaigns | {i.campaign})
    if by:
        console.print("who learned them: " + "; ".join(
            f"{who} {count} from {len(campaigns)} campaign{'s' if len(campaigns) != 1 else ''}"
            for who, (count, campaigns) in sorted(by.items(), key=lambda kv: -kv[1][0])), highlight=False)


def _short(n: float) -> str:
    """A row count in four characters or so: 950, 12k, 1.2M."""
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= size:
            value = n / size
            return f"{value:.1f}{suffix}" if value < 10 else f"{value:.0f}{suffix}"
    return f"{n:.0f}"
