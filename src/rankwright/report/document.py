"""What the report says, as plain blocks, before it becomes Markdown or HTML.

`build(proposal)` is pure: both renderers write the same blocks, so the Markdown and
the HTML report cannot drift apart. A `Plot` block names a chart that only the HTML
report draws.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Union

from rankwright.report import _format as fmt
from rankwright.report.proposal import PHASES, HypothesisEvidence, MetricComparison, Proposal

NOTHING_BETTER = "The proposal is the baseline: no change ships."
PROMOTED = "*"
RULES = {
    "expected": "the arm with the best expected gain over the baseline ships, if that gain is an improvement",
    "confirmed": "only an arm whose paired 95% interval is wholly a gain ships",
}


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]


@dataclass(frozen=True)
class Code:
    text: str


@dataclass(frozen=True)
class Heading:
    text: str


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    numeric: tuple[bool, ...]  # right-aligned columns


@dataclass(frozen=True)
class Plot:
    key: str  # "curves" | "spend" | "costs" | "effects"


Block = Union[Paragraph, Bullets, Code, Heading, Table, Plot]


@dataclass(frozen=True)
class Section:
    title: str
    blocks: tuple[Block, ...]


@dataclass(frozen=True)
class Document:
    title: str
    intro: tuple[Block, ...]  # the headline
    sections: tuple[Section, ...]


def build(proposal: Proposal, config_path: Path | None = None) -> Document:
    """The report's content; `config_path` is where proposal.yaml is written, if anywhere."""
    p = proposal
    decided = (_decision(p),) if p.decision is not None else ()
    body = (*decided, _reproduce(p, config_path), _comparison(p), _changes(p), _evidence(p), _cost(p),
            _decisions(p))
    if p.found_better:
        sections = (*body, _ruled_out(p), _notes(p))
    else:  # what was shown not to help is the news: say it first
        sections = (_ruled_out(p), *body, _notes(p))
    return Document(f"Proposal: {p.campaign}", _headline(p), sections)


def _sentence(text: str) -> str:
    text = " ".join(text.split())
    return text if not text or text[-1] in ".!?" else text + "."


def _listing(words: list[str]) -> str:
    return ", ".join(words)


def _spent(p: Proposal) -> str:
    return (f"Spent {fmt.sig(p.spent)} of {fmt.sig(p.approved_budget)} {fmt.unit(p.unit)} "
            f"approved ({fmt.percent(p.budget_used)}).")


def _headline(p: Proposal) -> tuple[Block, ...]:
    blocks: list[Block] = []
    if not p.found_better:
        blocks.append(Paragraph(NOTHING_BETTER))
    if p.headline.strip():
        blocks.append(Paragraph(_sentence(p.headline)))
    blocks.append(Paragraph(f"Objective: {p.objective}. {_spent(p)}"))
    return tuple(blocks)


def _reproduce(p: Proposal, config_path: Path | None) -> Section:
    blocks: list[Block] = [
        Paragraph("Train the proposed configuration with one command, run in this report's folder:"),
        Code(p.reproduce),
    ]
    if config_path is not None:
        blocks.append(Paragraph(f"proposal.yaml is at {config_path}"))
    if not p.config_diff:
        blocks.append(Paragraph("It is the baseline's configuration: nothing needs launching."))
    return Section("Reproduce", tuple(blocks))


def claim_of(m: MetricComparison) -> str:
    """What the test split says of a shipped change: never more than its interval shows."""
    if m.outcome == "better":
        return "test confirms the gain"
    if m.outcome == "worse":
        return "test disagrees with validation: the change is worse on test"
    return "test does not confirm the gain: its interval includes no change"


def probability(x: float) -> str:
    """A probability with two decimals, never shown as a certainty."""
    return ">0.99" if x > 0.99 else "<0.01" if x < 0.01 else f"{x:.2f}"


ARM_WIDTH = 30  # the decision table's arm column: with the other four it reads at 80 columns


def _clipped(name: str, width: int) -> str:
    """A long combination's name cut to fit its column; the config diff names it whole."""
    return name if len(name) <= width else name[:width - 3] + "..."


def _decision(p: Proposal) -> Section:
    d = p.decision
    assert d is not None
    blocks: list[Block] = [
        Paragraph(f"Decided on the validation objective ({p.objective}) alone; no decision reads the test "
                  f"split. Rule (strategy.ship: {d.rule}): {RULES.get(d.rule, d.rule)}."),
        Paragraph(_sentence(d.reason)),
    ]
    if d.arms:
        rows = []
        for a in d.arms:
            effect, ci = fmt.effect(a.effect, a.ci_low, a.ci_high)
            name = _clipped(a.arm, ARM_WIDTH - 2) + (f" {PROMOTED}" if a.arm == d.ships else "")
            rows.append((name, str(a.seeds), effect, ci, probability(a.p_better)))
        blocks.append(Table(("arm", "n", "effect", "95% CI", "P(better)"), tuple(rows),
                            (False, True, True, True, True)))
        star = f" A star ({PROMOTED}) marks what ships." if d.ships else ""
        blocks.append(Paragraph(
            f"Every full-fidelity arm with 2 or more seeds paired with the baseline's. Effect: relative change "
            f"of {p.objective} against the baseline on those seeds, negative is better; n: seeds; P(better): "
            f"the probability that the arm beats the baseline, from the paired t (flat prior).{star}"))
    return Section("Decision (validation split)", tuple(blocks))


def _comparison(p: Proposal) -> Section:
    if not p.found_better:
        return _baseline_only(p)
    blocks: list[Block] = []
    if p.metrics:
        rows = []
        for m in p.metrics:
            diff, ci = fmt.metric_diff(m.diff, m.ci_low, m.ci_high)
            rows.append((m.metric, fmt.metric_value(m.baseline), fmt.metric_value(m.proposal),
                         diff, ci, str(m.seeds)))
        blocks.append(Table(("metric", "baseline", "proposal", "diff", "95% CI", "seeds"), tuple(rows),
                            (False, True, True, True, True, True)))
        lower = [m.metric for m in p.metrics if m.lower_is_better]
        higher = [m.metric for m in p.metrics if not m.lower_is_better]
        direction = "; ".join(
            part for part in (f"lower is better for {_listing(lower)}" if lower else "",
                              f"higher is better for {_listing(higher)}" if higher else "") if part
        )
        outcomes = {o: [m.metric for m in p.metrics if m.outcome == o] for o in ("better", "worse", "unclear")}
        said = {"better": "better with 95% confidence", "worse": "worse with 95% confidence",
                "unclear": "no clear difference"}
        verdicts = "; ".join(f"{said[o]}: {_listing(names)}" for o, names in outcomes.items() if names)
        blocks.append(Paragraph(
            "Means over the seeds both ran; diff is proposal minus baseline with its 95% t interval "
            f"over the paired seeds ({direction}). {verdicts[0].upper()}{verdicts[1:]}."
        ))
        main = next((m for m in p.metrics if m.metric == "ne"), p.metrics[0])
        chosen = f" with P(better) {probability(p.p_better)}" if p.p_better is not None else ""
        blocks.append(Paragraph(
            f"Validation chose it{chosen}; the test split, which no decision reads, is the claim. "
            f"On test {main.metric}: {claim_of(main)}."))
    else:
        blocks.append(Paragraph("No test-split metrics were recorded: the claim rests on validation alone."))
    if p.bayes_ne is not None:
        text = f"Bayes limit of the synthetic data: NE {fmt.metric_value(p.bayes_ne)}."
        if p.gap_closed is not None:
            text += f" The proposal closes {fmt.percent(p.gap_closed)} of the baseline's gap to it."
        blocks.append(Paragraph(text))
    blocks.append(Plot("curves"))
    return Section("Baseline against proposal (test split)", tuple(blocks))


def _baseline_only(p: Proposal) -> Section:
    """The proposal is the baseline: its own test metrics, and no change claimed."""
    blocks: list[Block] = []
    if p.metrics:
        rows = tuple((m.metric, fmt.metric_value(m.baseline), str(m.seeds)) for m in p.metrics)
        blocks.append(Table(("metric", "baseline", "seeds"), rows, (False, True, True)))
        blocks.append(Paragraph("The proposal is the baseline: its test metrics, means over its seeds. No change "
                                "is claimed."))
    else:
        blocks.append(Paragraph("The proposal is the baseline; no test-split metrics were recorded."))
    if p.bayes_ne is not None:
        blocks.append(Paragraph(f"Bayes limit of the synthetic data: NE {fmt.metric_value(p.bayes_ne)}."))
    blocks.append(Plot("curves"))
    return Section("The baseline on the test split", tuple(blocks))


def _changes(p: Proposal) -> Section:
    if not p.config_diff:
        return Section("What changed", (Paragraph("Nothing: the proposal is the baseline configuration."),))
    rows = tuple((path, fmt.value(old), fmt.value(new)) for path, old, new in p.config_diff)
    return Section("What changed", (Table(("setting", "baseline", "proposal"), rows, (False, False, False)),))


def _groups(hypotheses: tuple[HypothesisEvidence, ...]) -> list[tuple[str, str, list[HypothesisEvidence]]]:
    """By phase (in the campaign's order), then by fidelity, each in the order given."""
    groups: dict[tuple[str, str], list[HypothesisEvidence]] = {}
    for h in hypotheses:
        groups.setdefault((h.phase, h.fidelity), []).append(h)
    order = {phase: i for i, phase in enumerate(PHASES)}
    first = {phase: i for i, (phase, _) in enumerate(groups)}
    keys = sorted(groups, key=lambda k: (order.get(k[0], len(PHASES)), first[k[0]]))
    return [(phase, fidelity, groups[(phase, fidelity)]) for phase, fidelity in keys]


def ordered_hypotheses(p: Proposal) -> list[HypothesisEvidence]:
    """The hypotheses in the order the report lists them."""
    return [h for _, _, members in _groups(p.hypotheses) for h in members]


def _evidence(p: Proposal) -> Section:
    if not p.hypotheses:
        return Section("Evidence", (Paragraph("No hypothesis was tried."),))
    counts = Counter(h.verdict for h in p.hypotheses)
    tally = ", ".join(f"{n} {verdict}" for verdict, n in counts.most_common())
    promoted = f"; a star ({PROMOTED}) marks a hypothesis promoted to the next phase" if any(
        h.promoted for h in p.hypotheses) else ""
    blocks: list[Block] = [
        Paragraph(f"{len(p.hypotheses)} hypothesis results ({tally}). Effect: relative change of "
                  f"{p.objective} against the hypothesis's own baseline, negative is better; "
                  f"n: seeds; p adj: p-value after the correction{promoted}."),
        Paragraph(f"Multiple-testing correction: {_sentence(p.correction) if p.correction.strip() else 'none.'}"),
        Paragraph(_rank_agreement(p)),
    ]
    for phase, fidelity, members in _groups(p.hypotheses):
        blocks.append(Heading(f"{phase.capitalize()}, fidelity {fidelity}"))
        rows = []
        for h in members:
            effect, ci = fmt.effect(h.effect, h.ci_low, h.ci_high)
            verdict = f"{h.verdict} {PROMOTED}" if h.promoted else h.verdict
            rows.append((h.name, str(h.seeds), effect, ci, fmt.p_value(h.p_adjusted), verdict))
        blocks.append(Table(("hypothesis", "n", "effect", "95% CI", "p adj", "verdict"), tuple(rows),
                            (False, True, True, True, True, False)))
        blocks.append(Bullets(tuple(
            f"{h.name} ({h.source}; {fmt.changes(h.changes)}): {_sentence(h.why)}" for h in members
        )))
    blocks.append(Plot("effects"))
    return Section("Evidence", tuple(blocks))


def _rank_agreement(p: Proposal) -> str:
    if p.rank_agreement is None:
        return "Rank agreement between low and full fidelity: not measured."
    method, value, points = p.rank_agreement
    return (f"Rank agreement between low and full fidelity: {method} {value:.2f} "
            f"over {points} point{'s' if points != 1 else ''}.")


def _cost(p: Proposal) -> Section:
    blocks: list[Block] = [Paragraph(_spent(p))]
    if p.phase_costs:
        blocks.append(Paragraph(
            f"In {fmt.unit(p.unit)}. Error: actual against the plan's estimate; used: actual against "
            "the phase's share of the budget after flows between phases."
        ))
        rows = [(c.phase, fmt.sig(c.estimated), fmt.sig(c.actual), fmt.percent(c.error, sign=True),
                 fmt.sig(c.budget), fmt.percent(c.used)) for c in p.phase_costs]
        estimated = sum(c.estimated for c in p.phase_costs)
        actual = sum(c.actual for c in p.phase_costs)
        budget = sum(c.budget for c in p.phase_costs)
        if len(p.phase_costs) > 1:
            error = (actual - estimated) / estimated if estimated > 0 else None
            rows.append(("total", fmt.sig(estimated), fmt.sig(actual), fmt.percent(error, sign=True),
                         fmt.sig(budget), fmt.percent(actual / budget if budget > 0 else None)))
        blocks.append(Table(("phase", "estimate", "actual", "error", "budget", "used"), tuple(rows),
                            (False, True, True, True, True, True)))
    else:
        blocks.append(Paragraph("No cost by phase was recorded."))
    blocks += [Plot("spend"), Plot("costs")]
    return Section("Cost", tuple(blocks))


def _decisions(p: Proposal) -> Section:
    if not p.revisions:
        return Section("Decisions", (Paragraph("The plan was never revised."),))
    items = tuple(
        f"Revision {r.number} ({r.phase}, {r.experiments} experiment{'s' if r.experiments != 1 else ''}): "
        f"{_sentence(r.reason)}"
        for r in p.revisions
    )
    return Section("Decisions", (Bullets(items),))


def _ruled_out(p: Proposal) -> Section:
    if not p.ruled_out:
        return Section("Ruled out", (Paragraph("Nothing was ruled out."),))
    return Section("Ruled out", (Bullets(tuple(_sentence(s) for s in p.ruled_out)),))


def _notes(p: Proposal) -> Section:
    if not p.notes:
        return Section("Notes", (Paragraph("None."),))
    return Section("Notes", (Bullets(tuple(_sentence(s) for s in p.notes)),))
