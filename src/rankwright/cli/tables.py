"""Rich tables shared by the commands."""

from __future__ import annotations

from typing import Any, Iterable

from rich.table import Table


def result_table(rows: Iterable[tuple[str, dict[str, Any]]], title: str = "results (test split)") -> Table:
    rows = list(rows)
    table = Table(title=title)
    for column, justify in (
        ("model", "left"), ("AUC", "right"), ("logloss", "right"), ("NE", "right"),
        ("calib.", "right"), ("best ep.", "right"), ("samples/s", "right"), ("gap closed", "right"),
    ):
        table.add_column(column, justify=justify, overflow="fold")
    bayes = next((r["bayes_test"] for _, r in rows if r.get("bayes_test")), None)
    for name, r in rows:
        test = r["test"]
        closed = "-"
        if bayes and bayes["ne"] < 1.0:
            closed = f"{(1.0 - test['ne']) / (1.0 - bayes['ne']):.0%}"
        table.add_row(
            name, f"{test['auc']:.4f}", f"{test['logloss']:.4f}", f"{test['ne']:.4f}",
            f"{test['calibration']:.3f}", str(r["best_epoch"]), f"{r['train_samples_per_s']:,.0f}", closed,
        )
    if bayes:
        table.add_row("[bold]Bayes limit[/]", f"{bayes['auc']:.4f}", f"{bayes['logloss']:.4f}",
                      f"{bayes['ne']:.4f}", f"{bayes['calibration']:.3f}", "-", "-", "100%")
    if bayes:
        table.caption = ("gap closed: share of the NE gap between predicting the base rate (NE 1.0) "
                         "and the Bayes limit that the model closes")
    return table
