"""The report's four charts as PNG bytes.

matplotlib is imported inside each function (the CLI starts without it) and used through
`matplotlib.figure.Figure` only: no pyplot, no global backend or state, so drawing is safe
in any process. A chart with nothing to show comes back without an image and with a
sentence that says why.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from rankwright.report import _format as fmt
from rankwright.report.document import ordered_hypotheses
from rankwright.report.proposal import VERDICTS, Proposal

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DPI = 110
MAX_EFFECT_ROWS = 60  # beyond this the effects chart keeps the promoted and the largest effects

VERDICT_COLOURS = {
    "helped": "#1b9e3e",
    "hurt": "#d62728",
    "inconclusive": "#e8a317",
    "no gain": "#7f7f7f",
    "failed": "#222222",
    "pruned": "#a6a6a6",
    "not run": "#cccccc",
}
PHASE_COLOURS = {
    "validation": "#1f77b4",
    "combination": "#9467bd",
    "exploitation": "#ff7f0e",
    "confirmation": "#2ca02c",
}
GROUP_COLOURS = {"baseline": "#4d4d4d", "proposal": "#d95f02"}
_PALETTE = ("#17becf", "#8c564b", "#e377c2", "#bcbd22", "#7f7f7f", "#1f77b4")


@dataclass(frozen=True)
class Chart:
    title: str
    png: bytes | None  # None: nothing to draw
    note: str  # a caption, or why the chart is missing


def draw_all(proposal: Proposal) -> dict[str, Chart]:
    """Every chart of the report, by the key its `Plot` block names."""
    drawers: dict[str, Callable[[Proposal], Chart]] = {
        "curves": learning_curves,
        "spend": spend_over_time,
        "costs": estimate_against_actual,
        "effects": hypothesis_effects,
    }
    return {key: draw(proposal) for key, draw in drawers.items()}


def _colour(name: str, known: dict[str, str], seen: dict[str, str]) -> str:
    if name in known:
        return known[name]
    return seen.setdefault(name, _PALETTE[len(seen) % len(_PALETTE)])


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    # No Software stamp: the same proposal gives the same bytes.
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def _finite(*values: float | None) -> bool:
    return all(v is not None and math.isfinite(v) for v in values)


def learning_curves(p: Proposal) -> Chart:
    title = "Learning curves"
    curves = [c for c in p.curves if c.epochs]
    if not curves:
        return Chart(title, None, "No learning curves were recorded, so there is nothing to plot.")
    from matplotlib.ticker import MaxNLocator

    fig = _figure(7.0, 3.8)
    ax = fig.add_subplot()
    sizes = {g: sum(1 for c in curves if c.group == g) for g in dict.fromkeys(c.group for c in curves)}
    seen: dict[str, str] = {}
    labelled: set[str] = set()
    for c in curves:
        if sizes[c.group] == 1:
            label = c.label
        elif c.group not in labelled:
            label = f"{c.group} ({sizes[c.group]} seeds)"
        else:
            label = "_nolegend_"
        labelled.add(c.group)
        ax.plot(c.epochs, c.values, color=_colour(c.group, GROUP_COLOURS, seen), lw=1.5, alpha=0.8,
                marker="o", ms=3, label=label)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(p.objective)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    return Chart(title, _png(fig), f"{p.objective} per epoch, one line per seed.")


def spend_over_time(p: Proposal) -> Chart:
    title = "Spend over time"
    points = sorted((s for s in p.spend if _finite(s.hours_since_start, s.cumulative)),
                    key=lambda s: s.hours_since_start)
    if not points:
        return Chart(title, None, "No spend was recorded over time, so there is nothing to plot.")
    fig = _figure(7.0, 3.8)
    ax = fig.add_subplot()
    xs = [s.hours_since_start for s in points]
    ys = [s.cumulative for s in points]
    phases = [s.phase for s in points]
    if xs[0] > 0:  # the campaign starts with nothing spent
        xs, ys, phases = [0.0, *xs], [0.0, *ys], [phases[0], *phases]
    seen: dict[str, str] = {}
    labelled: set[str] = set()
    start = 0
    for i in range(1, len(xs) + 1):  # one line per run of points in the same phase
        if i < len(xs) and phases[i] == phases[start]:
            continue
        phase = phases[start]
        # Each run starts from the last point of the one before, so the line is unbroken.
        lo = max(0, start - 1)
        ax.plot(xs[lo:i], ys[lo:i], color=_colour(phase, PHASE_COLOURS, seen), lw=2,
                marker="o" if len(xs) <= 60 else None, ms=3,
                label=phase if phase not in labelled else "_nolegend_")
        labelled.add(phase)
        start = i
    ax.axhline(p.approved_budget, color="black", ls="--", lw=1,
               label=f"approved budget ({fmt.sig(p.approved_budget)})")
    ax.set_ylim(0, max(p.approved_budget, max(ys)) * 1.1 or 1)
    ax.set_xlim(left=0)
    ax.set_xlabel("hours since start")
    ax.set_ylabel(f"spent, {fmt.unit(p.unit)}")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, loc="best")
    return Chart(title, _png(fig), f"Cumulative spend by phase against the approved budget, "
                                   f"in {fmt.unit(p.unit)}.")


def estimate_against_actual(p: Proposal) -> Chart:
    title = "Estimate against actual, by phase"
    costs = [c for c in p.phase_costs if _finite(c.estimated, c.actual, c.budget)]
    if not costs:
        return Chart(title, None, "No cost by phase was recorded, so there is nothing to plot.")
    fig = _figure(7.0, 3.8)
    ax = fig.add_subplot()
    width = 0.38
    xs = range(len(costs))
    ax.bar([x - width / 2 for x in xs], [c.estimated for c in costs], width, color="#9ecae1",
           label="estimate")
    bars = ax.bar([x + width / 2 for x in xs], [c.actual for c in costs], width, color="#08519c",
                  label="actual")
    ax.hlines([c.budget for c in costs], [x - 0.45 for x in xs], [x + 0.45 for x in xs],
              colors="black", linestyles="--", lw=1, label="budget share")
    for bar, c in zip(bars, costs):
        if c.error is not None:
            ax.annotate(fmt.percent(c.error, sign=True), (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        xytext=(0, 2), textcoords="offset points", ha="center", va="bottom", fontsize=8,
                        bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.5})
    top = max(max(c.estimated, c.actual, c.budget) for c in costs)
    ax.set_ylim(0, top * 1.15 or 1)
    ax.set_xticks(list(xs), [c.phase for c in costs])
    ax.set_ylabel(fmt.unit(p.unit))
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(frameon=False)
    return Chart(title, _png(fig), "Each phase's estimated and actual cost; the label is the estimate's "
                                   "error, the dashed line the phase's share of the budget.")


def hypothesis_effects(p: Proposal) -> Chart:
    title = "Hypothesis effects"
    finished = [h for h in ordered_hypotheses(p) if _finite(h.effect)]
    missing = len(p.hypotheses) - len(finished)
    if not finished:
        return Chart(title, None, "No hypothesis finished with an effect, so there is nothing to plot.")
    shown = finished
    if len(finished) > MAX_EFFECT_ROWS:
        keep = sorted(finished, key=lambda h: (not h.promoted, -abs(h.effect or 0.0)))[:MAX_EFFECT_ROWS]
        kept = {id(h) for h in keep}
        shown = [h for h in finished if id(h) in kept]
    n = len(shown)
    fig = _figure(9.0, min(2.0 + 0.3 * n, 22.0))
    ax = fig.add_subplot()
    seen: dict[str, str] = {}
    labelled: set[str] = set()
    for row, h in enumerate(shown):
        y = n - 1 - row  # the first hypothesis on top
        effect = (h.effect or 0.0) * 100
        xerr = None
        if _finite(h.ci_low, h.ci_high):
            xerr = [[max(0.0, effect - h.ci_low * 100)], [max(0.0, h.ci_high * 100 - effect)]]  # type: ignore[operator]
        ax.errorbar([effect], [y], xerr=xerr, fmt="o", ms=5, capsize=3, lw=1.5,
                    color=_colour(h.verdict, VERDICT_COLOURS, seen),
                    label=h.verdict if h.verdict not in labelled else "_nolegend_")
        labelled.add(h.verdict)
    ax.axvline(0, color="black", lw=1)
    ax.set_yticks(range(n), [f"{h.name} ({h.phase}, {h.fidelity})" for h in reversed(shown)],
                  fontsize=8 if n > 25 else 9)
    ax.set_ylim(-0.7, n - 0.3)
    ax.set_xlabel(f"relative change of {p.objective}, % (negative is better)")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    rank = {verdict: i for i, verdict in enumerate(VERDICTS)}
    ordered = sorted(zip(labels, handles), key=lambda lh: rank.get(lh[0], len(rank)))
    ax.legend([h for _, h in ordered], [lab for lab, _ in ordered], frameon=False, fontsize=8,
              loc="upper left", bbox_to_anchor=(1.01, 1))
    note = "Each hypothesis's effect with its 95% interval, coloured by verdict."
    if len(shown) < len(finished):
        note += f" {len(shown)} of {len(finished)} are drawn: the promoted ones, then the largest effects."
    if missing:
        note += f" {missing} without an effect (failed, pruned or not run) are not drawn."
    return Chart(title, _png(fig), note)
