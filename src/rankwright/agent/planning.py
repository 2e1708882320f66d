"""Preflight checklist and the exploration plan with its up-front cost estimate.

Both are pure data: `preflight` returns items (ok, detail, how to fix), `make_plan` returns
the experiments per phase with predicted costs. Nothing is launched here except the
target's smoke run, which runs synchronously in a scratch folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rankwright.agent.phases._base import CONFIRMATION_STAGE1_SEEDS, TUNER_FIRST_RUNS
from rankwright.agent.spec import CampaignSpec
from rankwright.targets import Target, TargetError, value_at



@dataclass(frozen=True)
class CheckItem:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    warning: bool = False  # worth fixing, but the campaign can run as it is (never blocks approval)


def _writable(path: Path) -> tuple[bool, str]:
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path):
            pass
        return True, f"{path} is writable"
    except OSError as exc:
        return False, f"{path}: {exc.strerror}"


def _seeds_differ(spec: CampaignSpec, target: Target) -> CheckItem:
    """Repeats measure the noise only if they can differ: the target must have a seed knob."""
    seed = target.role_paths().get("seed")
    if seed:
        return CheckItem("repeats differ by their seed", True, f"each repeat sets {seed} to its seed number"
                         + (f" plus {spec.first_seed - 1}" if spec.first_seed != 1 else ""))
    if spec.baseline_seeds <= 1 and spec.hypotheses.seeds <= 1:
        return CheckItem("repeats differ by their seed", True, "one seed per arm: nothing is repeated")
    return CheckItem("repeats differ by their seed", False,
                     f"the target declares no seed knob, so its {spec.baseline_seeds} baseline repeats would be "
                     "the same run and the noise would read as zero",
                     "declare the knob that seeds a run (roles: {seed: <knob path>}), or use one seed")


def _split_shift(target: Target) -> CheckItem | None:
    """The shift between the splits that the preflight can see (built-in target, file data)."""
    from rankwright.targets import BuiltinTarget

    data = target.base_config.get("data") if isinstance(target.base_config, dict) else None
    if not isinstance(target, BuiltinTarget) or not isinstance(data, dict) or data.get("source", "synthetic") == \
            "synthetic":
        return None
    from rankwright.ranking.data import DataConfig, DataError
    from rankwright.ranking.data.shift import shift_report

    try:
        report = shift_report(DataConfig.model_validate(data))
    except (DataError, ValueError) as exc:
        return CheckItem("validation resembles test", False, f"the data could not be split: {exc}",
                         "fix base_config.data")
    worst = max(report.unseen.items(), key=lambda kv: kv[1]["test"], default=None)
    summary = (f"rows {report.rows['train']:,} / {report.rows['valid']:,} / {report.rows['test']:,} (train/valid/"
               f"test), label rate {report.label_rate['valid']:.3f} / {report.label_rate['test']:.3f} (valid/test)"
               + (f"; most unseen values: {worst[0]} {worst[1]['valid']:.0%} / {worst[1]['test']:.0%}" if worst else ""))
    if report.warnings:
        return CheckItem("validation resembles test", True, "; ".join(report.warnings) + f" ({summary}): the "
                         "campaign optimises a validation objective the test set may not reward",
                         "split by time (data.split.order: file or column) or give a validation file drawn "
                         "like the test file", warning=True)
    return CheckItem("validation resembles test", True, summary)


def _writes_inside(spec: CampaignSpec, target: Target) -> CheckItem:
    """The store, the target's result files and every place a planned change makes a run
    write lie inside the allowed paths."""
    from rankwright.agent.access import allowed_roots, outside_writes, store_outside
    from rankwright.store import database_url

    roots = allowed_roots(spec.allowed_paths)
    problems = [p for p in [store_outside(roots, database_url())] if p]
    problems += outside_writes(target, target.base_config, roots, roots[0] / "experiments")
    for change in spec.changes:
        problems += [f"changes {change.name}: {p}" for p in
                     outside_writes(target, target.config_with(change.set), roots, roots[0] / "experiments")]
    if problems:
        return CheckItem("writes inside allowed paths", False, "; ".join(dict.fromkeys(problems)),
                         "add the folder to allowed_paths, or change the value")
    return CheckItem("writes inside allowed paths", True,
                     f"the store and every place a run writes are inside {', '.join(map(str, roots))}")


def _data_readable(target: Target) -> CheckItem:
    from rankwright.targets import BuiltinTarget

    if not isinstance(target, BuiltinTarget):  # a codebase of its own reads its own data
        files = {d: value_at(target.base_config, d) for d in target.data_files}
        missing = [f"{d}: {v}" for d, v in files.items() if not isinstance(v, str) or not os.access(
            v if os.path.isabs(v) or not target.root else os.path.join(target.root, v), os.R_OK)]
        if missing:
            return CheckItem("data readable", False, "cannot read " + "; ".join(missing),
                             "fix the paths in the target's base_config (relative paths start at its root)")
        if files:
            return CheckItem("data readable", True, f"the target's data files are readable ({', '.join(files)})")
        return CheckItem("data readable", True, f"target {target.name!r} reads its own data (declare data_files "
                         "in the target to have it checked here)")
    data = target.base_config.get("data") if isinstance(target.base_config, dict) else None
    if not data or data.get("source", "synthetic") == "synthetic":
        return CheckItem("data readable", True, "built-in synthetic data (generated on the fly)")
    missing = [f"data.{role}: {data[role]}" for role in ("train", "valid", "test")
               if data.get(role) and not os.access(data[role], os.R_OK)]
    if missing:
        return CheckItem("data readable", False, "cannot read " + "; ".join(missing),
                         "fix the paths in base_config.data (relative paths start at the spec's folder)")
    return CheckItem("data readable", True, "every data file named in base_config.data is readable")


def _smoke_run(target: Target, workdir: Path, timeout_s: float) -> CheckItem:
    changes = target.smoke_changes()
    run_dir = Path(tempfile.mkdtemp(prefix="smoke-", dir=workdir)).resolve()
    try:
        command, config = target.render(changes, run_dir)
        target.write_config(run_dir, config)
        env = {**os.environ, **target.render_env(changes, run_dir)}  # as the executor starts a run
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, cwd=run_dir, env=env)
    except (TargetError, OSError, subprocess.TimeoutExpired) as exc:
        return CheckItem("target smoke run", False, f"{exc.__class__.__name__}: {exc}",
                         "run the target's command by hand in a scratch folder and fix what it reports")
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return CheckItem("target smoke run", False, f"exit code {done.returncode}: {' | '.join(tail)}",
                         f"see {run_dir}; the command was: {' '.join(command)}")
    try:
        result = target.read_result(run_dir)
    except TargetError as exc:
        return CheckItem("target smoke run", False, str(exc), "check the target's metrics section (objective)")
    if result is None:
        return CheckItem("target smoke run", False, "the run ended without a result file",
                         "check the target's metrics section (file, result_event, objective)")
    shutil.rmtree(run_dir, ignore_errors=True)  # kept only when it failed, for a person to look at
    return CheckItem("target smoke run", True, f"one short run finished; objective {result['objective']:.4g}")


def _objective_epoch(spec: CampaignSpec, target: Target) -> CheckItem | None:
    """The built-in trainer keeps the epoch that is best on `train.monitor`. When that is not
    the campaign's objective, the objective is read at an epoch chosen for another metric:
    on the hypothesis benchmark's pairwise task that made the baseline's NE 1.018 with a
    seed sd of 1.72%, against 0.994 and 0.22% when the NE-best epoch was kept."""
    run_config = getattr(target, "run_config", None)  # the built-in target's own validator
    split, _, metric = spec.objective.metric.partition(".")
    if run_config is None or split != "valid" or metric not in ("auc", "logloss", "ne"):
        return None
    try:
        train = run_config(target.base_config).train
    except Exception:  # noqa: BLE001 - an invalid base config is reported by the smoke run
        return None
    if not train.restore_best or train.monitor == metric:
        return None
    return CheckItem("objective measured at its best epoch", True,
                     f"the runs keep the epoch with the best validation {train.monitor}, but the objective is "
                     f"{spec.objective.metric}: it is read at an epoch chosen for another metric, which adds noise",
                     f"set train.monitor: {metric} in base_config", warning=True)


def _cluster_checks(spec: CampaignSpec) -> list[CheckItem]:
    """A cluster executor: its scheduler answers, and its runs can report to the store."""
    from rankwright.store.engine import database_url

    options = spec.executor
    if options.kind == "slurm":
        from rankwright.executors.slurm import probe
    else:
        from rankwright.executors.ray import probe
    ok, detail = probe(options)
    items = [CheckItem("executor reachable", ok, f"{options.kind}: {detail}",
                       "" if ok else f"start {options.kind} or point the spec's executor at it")]
    url = database_url()
    local_file = url.startswith("sqlite")
    items.append(CheckItem("runs can report to the store", True,
                           f"{'SQLite file' if local_file else 'database server'} "
                           f"{'(only hosts that share this filesystem can reach it)' if local_file else ''}".strip(),
                           "set RANKWRIGHT_DB to a PostgreSQL URL that the cluster's hosts reach" if local_file
                           else "", warning=local_file))
    return items


def preflight(spec: CampaignSpec, target: Target, *, smoke: bool = True, smoke_timeout_s: float = 600) -> list[CheckItem]:
    items = [CheckItem("budget set", True, f"{spec.budget.amount:g} {spec.budget.unit}, pause at "
                       f"{spec.budget.pause_threshold:.0%}, hard cap {spec.budget.hard_cap or spec.budget.amount:g}")]
    for raw in spec.allowed_paths:
        ok, detail = _writable(Path(raw))
        items.append(CheckItem("paths writable", ok, detail, "" if ok else f"create {raw} or allow another path"))
    items.append(_writes_inside(spec, target))
    items.append(_seeds_differ(spec, target))
    if spec.executor is None or spec.executor.kind == "local":
        runs_root = Path(spec.allowed_paths[0]) / "runs"
        ok, detail = _writable(runs_root)
        items.append(CheckItem("executor reachable", ok, f"local executor: {detail}",
                               "" if ok else "the local executor needs a writable runs folder"))
    else:
        items.extend(_cluster_checks(spec))
    items.append(_data_readable(target))
    if items[-1].ok:
        shift = _split_shift(target)
        if shift is not None:
            items.append(shift)
    epoch = _objective_epoch(spec, target)
    if epoch is not None:
        items.append(epoch)
    if smoke:
        items.append(_smoke_run(target, Path(spec.allowed_paths[0]), smoke_timeout_s))
    else:
        items.append(CheckItem("target smoke run", False, "skipped (--skip-smoke)",
                               "run `rankwright plan` without --skip-smoke before approving"))
    return items


def first_round_check(spec: CampaignSpec, plan: list["PlannedExperiment"]) -> CheckItem:
    """Does the first validation round leave the later phases their shares? A round that eats
    the budget ends the campaign in validation: nothing left to confirm a winner with."""
    plannable = spec.budget.amount * spec.budget.pause_threshold
    first = sum(p.predicted_hours for p in plan)
    share = spec.strategy.phases.validation
    if plannable <= 0 or first <= share * plannable:
        return CheckItem("first round fits its share", True,
                         f"{first:.3g} of {plannable:.3g} {spec.budget.unit} ({first / plannable:.0%}; validation's "
                         f"share is {share:.0%})" if plannable > 0 else "no budget to share")
    return CheckItem("first round fits its share", True,
                     f"the first round is predicted at {first / plannable:.0%} of the budget the agent may commit "
                     f"(validation's share is {share:.0%}): combination, exploitation and the confirmation may "
                     "not fit, and the campaign can end with nothing confirmed",
                     "fewer hypotheses (hypotheses.top_k) or seeds, or a larger budget", warning=True)


@dataclass(frozen=True)
class PlannedExperiment:
    phase: str
    name: str  # the arm: a hypothesis (or baseline) at one fidelity ("@low" for low fidelity)
    changes: dict[str, Any]  # every knob change the run gets: the hypothesis's and the fidelity's
    seed: int
    predicted_hours: float
    technique: str | None = None  # the knowledge-base technique a hypothesis applies
    source: str = "spec"  # spec | history | knowledge | diagnosis | llm | baseline | combination | exploitation
    reason: str = ""
    hypothesis: str = ""  # the arm's name without its fidelity
    delta: dict[str, Any] = field(default_factory=dict)  # the hypothesis's own changes
    fidelity: str = "full"  # low | full
    params: dict[str, Any] = field(default_factory=dict)  # an exploitation trial's sampled values


# What the up-front projection assumes of the later phases (the real ones depend on results)
PROJECTED_PROMOTED = 2


def make_plan(spec: CampaignSpec, target: Target, ranking: Any = None,
              notes: list[str] | None = None) -> list[PlannedExperiment]:
    """The first round of validation: the baseline with seeds at the validation fidelity,
    each change of the spec, then the top `spec.hypotheses.top_k` of the engine's `ranking`
    (those not already listed), each with `spec.hypotheses.seeds` seeds shared with the
    baseline, as many as fit validation's share of the budget (at least one), like every
    later round; `notes` gets a line saying how many were left for later when some were.
    Later rounds and phases are decided by the agent inside the approved strategy."""
    from rankwright.agent.naming import arm_name

    low = validation_fidelity(spec, target)

    def runs(name: str, delta: dict[str, Any], seeds: int, **extra: Any) -> list[PlannedExperiment]:
        changes = {**low, **delta}
        hours = target.predict_hours(changes, parallel=spec.max_parallel)
        return [PlannedExperiment("validation", arm_name(name, bool(low)), changes, seed, hours, hypothesis=name,
                                  delta=dict(delta), fidelity="low" if low else "full", **extra)
                for seed in range(1, seeds + 1)]

    seeds = spec.hypotheses.seeds
    if goes_tuner_first(spec, target):
        # the baseline's seeds serve only the confirmation: its first stage's now, the rest
        # with its second stage, if the winner is borderline
        first = min(max(spec.baseline_seeds, seeds), CONFIRMATION_STAGE1_SEEDS)
        if notes is not None and ranking is not None and spec.hypotheses.top_k:
            runs_affordable = budget_in_runs(spec, target)
            notes.append(f"tuner first: the budget buys about {runs_affordable:.0f} baseline runs, under "
                         f"{TUNER_FIRST_RUNS}, too few for validation rounds with seeds; the hypotheses expected "
                         "to help go to the tuner as its first trials (one seed each, with everything measured "
                         f"told to it), and the winner is confirmed on the baseline's seeds ({first} now, the "
                         "others only if the confirmation's first stage is borderline)")
        return runs("baseline", {}, first, source="baseline",
                    reason="the baseline, with seeds: the noise the winner is confirmed against")
    plan = runs("baseline", {}, max(spec.baseline_seeds, seeds), source="baseline",
                reason="the baseline, with seeds: the noise every hypothesis is judged against")
    for change in spec.changes:
        plan += runs(change.name, dict(target.validate_changes(change.set)), seeds,
                     technique=_technique_of(spec, target, dict(change.set)), reason=change.reason)
    if ranking is not None and spec.hypotheses.top_k:
        taken = {c.name for c in spec.changes} | {"baseline"}
        listed = [dict(target.validate_changes(c.set)) for c in spec.changes]
        allowed = spec.strategy.techniques
        chosen = [h for h in ranking.hypotheses if h.name not in taken and h.changes not in listed
                  and (allowed is None or h.technique is None or h.technique in allowed)]
        share = spec.strategy.phases.validation * spec.budget.amount * spec.budget.pause_threshold
        wanted = chosen[: spec.hypotheses.top_k]
        fitted = 0
        for h in wanted:
            entries = runs(h.name, dict(h.changes), seeds, technique=h.technique, source=h.source, reason=h.reason)
            if fitted and sum(p.predicted_hours for p in plan + entries) > share:
                break
            plan += entries
            fitted += 1
        if fitted < len(wanted) and notes is not None:
            notes.append(f"first round: {fitted} of the top {len(wanted)} hypotheses fit validation's "
                         f"{spec.strategy.phases.validation:.0%} share of the budget; the others wait for a later "
                         "round, or for a larger budget")
    return plan


def budget_in_runs(spec: CampaignSpec, target: Target) -> float:
    """How many full-fidelity baseline runs the plannable budget buys, as predicted."""
    one = target.predict_hours({}, parallel=spec.max_parallel)
    return spec.budget.amount * spec.budget.pause_threshold / one if one > 0 else float("inf")


def goes_tuner_first(spec: CampaignSpec, target: Target) -> bool:
    """A budget under `TUNER_FIRST_RUNS` runs skips validation rounds (a spec that lists
    its own changes keeps them: the engineer asked for them to be validated)."""
    return not spec.changes and budget_in_runs(spec, target) < TUNER_FIRST_RUNS


def validation_fidelity(spec: CampaignSpec, target: Target) -> dict[str, Any]:
    """The knob changes of a validation run: the strategy's low fidelity, except tuner first,
    where the baseline's seeds are the only validation runs and the tuner and the
    confirmation need them at full fidelity (at low fidelity they would be run twice)."""
    from rankwright.agent.spec import low_fidelity

    return {} if goes_tuner_first(spec, target) else low_fidelity(spec, target)


def _technique_of(spec: CampaignSpec, target: Target, changes: dict[str, Any]) -> str | None:
    """The knowledge-base technique a spec change is (same changes on this baseline), so the
    engine knows it was measured whatever the spec called it."""
    try:
        from rankwright.agent.learning import model_family
        from rankwright.hypotheses.engine import technique_for_changes
        from rankwright.hypotheses.knowledge import knob_values, load_knowledge_base
    except ImportError:  # pragma: no cover - the engine predates the function
        return None
    paths = {k.path for k in target.knobs}
    return technique_for_changes(load_knowledge_base(), model_family(spec, target), paths,
                                 knob_values(target.base_config, paths), target.validate_changes,
                                 target.validate_changes(changes))


def projection(spec: CampaignSpec, target: Target, plan: list[PlannedExperiment]) -> dict[str, float]:
    """The up-front estimate per phase, in the budget's unit: validation's first round as
    planned and its later rounds alike; combination and exploitation as the strategy would
    run them with `PROJECTED_PROMOTED` promoted hypotheses. Each phase is capped at what
    the strategy lets it spend (its share plus what earlier phases leave)."""
    from rankwright.agent.spec import search_space

    st = spec.strategy
    full = target.predict_hours({}, parallel=spec.max_parallel)
    fidelity = validation_fidelity(spec, target)
    low = target.predict_hours(fidelity, parallel=spec.max_parallel) if fidelity else full
    first = sum(p.predicted_hours for p in plan)
    tuner = goes_tuner_first(spec, target)
    per_round = 0 if tuner else spec.hypotheses.top_k * spec.hypotheses.seeds * low
    validation = first + (st.rounds - 1) * per_round
    promoted = 0 if tuner else min(PROJECTED_PROMOTED, spec.hypotheses.top_k * st.rounds + len(spec.changes))
    checked = promoted + (st.fidelity_check_rejected if fidelity else 0)
    combination = (1 + checked + max(promoted - 1, 0)) * st.full_seeds * full if promoted else 0.0
    trials = st.trials if search_space(spec, target) else 0
    exploitation = trials * full + (2 * st.confirmation_seeds - st.full_seeds) * full
    plannable = spec.budget.amount * spec.budget.pause_threshold
    out, left = {}, plannable
    for phase, cost in (("validation", validation), ("combination", combination), ("exploitation", exploitation)):
        later = sum(st.phases.of(p) for p in ("validation", "combination", "exploitation")
                    [("validation", "combination", "exploitation").index(phase) + 1:]) * plannable
        out[phase] = min(cost, max(left - later, 0.0))
        left -= out[phase]
    return out


def plan_document(spec: CampaignSpec, items: list[CheckItem], plan: list[PlannedExperiment],
                  target: Target | None = None) -> dict[str, Any]:
    from rankwright.agent.spec import fidelity_saving, search_space

    phases = projection(spec, target, plan) if target is not None else {
        "validation": sum(p.predicted_hours for p in plan)}
    return {
        "preflight": [asdict(i) for i in items],
        "preflight_ok": all(i.ok for i in items),
        "experiments": [asdict(p) for p in plan],
        "estimated_hours": sum(phases.values()),
        "first_round_hours": sum(p.predicted_hours for p in plan),
        "phases": phases,
        "budget": spec.budget.model_dump(),
        "plannable": spec.budget.amount * spec.budget.pause_threshold,
        "strategy": {
            **spec.strategy.model_dump(mode="json"),
            "low_fidelity": validation_fidelity(spec, target) if target is not None else {},
            "low_fidelity_saving": fidelity_saving(spec, target) if target is not None else None,
            "search_space": {k: r.model_dump(mode="json") for k, r in
                             (search_space(spec, target) if target is not None else {}).items()},
            "seeds": {"baseline": spec.baseline_seeds, "validation": spec.hypotheses.seeds,
                      "full": spec.strategy.full_seeds, "confirmation": spec.strategy.confirmation_seeds},
            "round_size": spec.hypotheses.top_k, "max_parallel": spec.max_parallel,
            "tuner_first": goes_tuner_first(spec, target) if target is not None else False,
            "allowed_paths": list(spec.allowed_paths),
        },
    }
