"""The peers: Optuna studies (TPE with its defaults, TPE with few start-up trials, random
search) and the naive "copy what worked last time" (`copy_last`) on the same target, knobs and budget as Rankwright, with Optuna's median pruner
on the per-epoch validation objective (the same pruner settings as Rankwright's
exploitation phase), two trials side by side.

A study starts from the baseline (its first, enqueued trial) and asks trials while the
compute already charged plus the expected cost of the runs in flight and of the next trial
fits the budget. The expected cost of a trial is the baseline's measured cost scaled by
the target's cost model, corrected by what the ended trials cost. When the compute charged
plus what the runs in flight have burnt so far reaches the budget, those runs are cut, as
a campaign's hard cap cuts its runs. A pruned or cut trial's compute stays charged.

Resumable: every trial asked is logged (``trials.jsonl``) before its run starts; after a
stop the log is replayed into a fresh study in order, runs that ended are told, runs
still going are waited for, and nothing is run twice.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Mapping

from rankwright.bench.runs import POLL_S, Finished, Runner
from rankwright.bench.tasks import MAX_PARALLEL, PRUNER, TPE_FEW_STARTUP, training_seeds
from rankwright.targets import Target


def sampler(method: str, seed: int):
    import optuna

    if method == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if method == "tpe-few":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=TPE_FEW_STARTUP)
    if method == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise ValueError(f"unknown peer {method!r}; known: tpe, tpe-few, random")


def distributions(space: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out: dict[str, Any] = {}
    for knob, entry in space.items():
        if "choice" in entry:
            out[knob] = CategoricalDistribution(list(entry["choice"]))
        elif "int" in entry:
            low, high, log = entry["int"]
            out[knob] = IntDistribution(int(low), int(high), log=log)
        else:
            low, high, log = entry["float"]
            out[knob] = FloatDistribution(low, high, log=log)
    return out


def _lookup(config: Mapping[str, Any], path: str) -> Any:
    node: Any = config
    for part in path.split("."):
        node = node[part]
    return node


def baseline_params(space: Mapping[str, Mapping[str, Any]], target: Target) -> dict[str, Any]:
    """The baseline's own values in the peers' space (the first trial of every study)."""
    params: dict[str, Any] = {}
    for knob, entry in space.items():
        value = _lookup(target.base_config, knob)
        if "decode" in entry:
            value = "-".join(map(str, value))
        elif entry.get("zero_at_low") and value == 0:
            value = entry["float"][0]
        if "choice" in entry and value not in entry["choice"]:
            raise ValueError(f"peer space: the baseline's {knob}={value!r} is not among {entry['choice']}")
        params[knob] = value
    return params


def changes_of(params: Mapping[str, Any], space: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """A trial's parameters as knob changes of the target."""
    changes: dict[str, Any] = {}
    for knob, value in params.items():
        entry = space[knob]
        if "decode" in entry:
            value = list(entry["decode"][value])
        elif entry.get("zero_at_low") and value <= entry["float"][0]:
            continue  # off: the baseline's own 0 (a change to 0 is outside a log knob's range)
        changes[knob] = value
    return changes


def run_study(method: str, seed: int, target: Target, space: Mapping[str, Mapping[str, Any]], budget_s: float,
              unit_s: float, folder: Path, progress=None) -> dict[str, Any]:
    """One peer on one seed, to the end of its budget. Returns every trial and the best."""
    import optuna
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    folder.mkdir(parents=True, exist_ok=True)
    runner = Runner(target, folder / "runs", MAX_PARALLEL)
    study = optuna.create_study(direction="minimize", sampler=sampler(method, seed),
                                pruner=optuna.pruners.MedianPruner(**PRUNER))
    dists = distributions(space)
    base_cost = target.predict_hours({})
    log_path = folder / "trials.jsonl"
    logged = [json.loads(line) for line in log_path.read_text().splitlines()] if log_path.exists() else []
    started = time.time()

    predictions: dict[str, float] = {}

    def predicted(params: Mapping[str, Any]) -> float:
        """The cost model's prediction (it builds the model to count its compute: cached)."""
        key = json.dumps(params, sort_keys=True, default=str)
        if key not in predictions:
            predictions[key] = unit_s * target.predict_hours(changes_of(params, space)) / base_cost
        return predictions[key]

    def expected(params: Mapping[str, Any]) -> float:
        """The cost model's prediction, corrected by what the ended trials actually cost."""
        ended = [(t["cpu_seconds"], predicted(t["params"])) for t in trials if t["state"] == "complete"]
        correction = sum(a for a, _ in ended) / sum(p for _, p in ended) if ended else 1.0
        return predicted(params) * correction

    trials: list[dict[str, Any]] = []
    running: dict[int, tuple[Any, str, str, int]] = {}  # number -> (optuna trial, key, handle, epochs told)
    spent = 0.0
    ended_file = folder / "ended.json"
    stop_asking = ended_file.exists()  # a study that ended is only replayed, never extended
    replay = list(logged)
    if not replay:
        study.enqueue_trial(baseline_params(space, target))

    def start(params: Mapping[str, Any] | None) -> bool:
        """Ask (or replay) one trial and start its run; False when it does not fit."""
        nonlocal stop_asking
        if params is not None:
            study.enqueue_trial(dict(params))
        trial = study.ask(dists)
        key = f"{method}-s{seed}/trial-{trial.number}"
        if params is None:
            committed = spent + sum(expected(t.params) for t, *_ in running.values())
            if committed + expected(trial.params) > budget_s:
                study.tell(trial, state=TrialState.FAIL)
                stop_asking = True
                return False
            with log_path.open("a") as f:
                f.write(json.dumps({"number": trial.number, "params": trial.params, "key": key}) + "\n")
        changes = {**changes_of(trial.params, space), "train.seed": training_seeds(seed)}
        handle = None
        while handle is None:  # a slot frees when a run of ours ends; wait for it here
            handle = runner.submit(key, changes)
            if handle is None:
                collect()
                time.sleep(POLL_S)
        running[trial.number] = (trial, key, handle, 0)
        return True

    threads = float(runner.env["OMP_NUM_THREADS"])

    def collect() -> None:
        nonlocal spent, stop_asking
        now = time.time()
        burning = sum(threads * max(0.0, now - info.started_at.timestamp()) for info in
                      (runner.executor.status(h) for _, _, h, _ in running.values()) if info.started_at is not None)
        if spent + burning >= budget_s and running:  # the hard cap, as a campaign's: cut what still runs
            stop_asking = True
            for _, key, handle, _ in running.values():
                runner.cancel(handle)
        for number, (trial, key, handle, told) in list(running.items()):
            finished = runner.ended(key, handle)
            if finished is None:
                curve = runner.curve(key)
                for epoch in range(told + 1, len(curve) + 1):
                    trial.report(curve[epoch - 1], epoch)
                running[number] = (trial, key, handle, len(curve))
                if len(curve) > told and trial.should_prune():
                    runner.cancel(handle)
                continue
            del running[number]
            spent += finished.cpu_seconds
            for epoch in range(told + 1, len(finished.curve) + 1):
                trial.report(finished.curve[epoch - 1], epoch)
            if finished.status == "succeeded" and finished.objective is not None \
                    and math.isfinite(finished.objective):
                study.tell(trial, finished.objective)
                state = "complete"
            elif finished.status == "cancelled" and stop_asking:
                study.tell(trial, state=TrialState.FAIL)
                state = "cut at the budget"
            elif finished.status == "cancelled":
                study.tell(trial, state=TrialState.PRUNED)
                state = "pruned"
            else:
                study.tell(trial, state=TrialState.FAIL)
                state = "failed"
            trials.append({"number": number, "state": state, "params": trial.params, **finished.to_dict()})
            if progress:
                progress(f"{method} seed {seed}: trial {number} {state}, "
                         f"{spent / unit_s:.1f}/{budget_s / unit_s:.0f} units")

    while replay:  # what a stopped study had asked, in order, before anything new
        start(replay.pop(0)["params"])
        collect()
    while True:
        collect()
        if not stop_asking and len(running) < MAX_PARALLEL:
            start(None)
            continue
        if not running:
            break
        time.sleep(POLL_S)
    ended_file.write_text(json.dumps({"spent_s": spent}))
    done = sorted(trials, key=lambda t: t["number"])
    complete = [t for t in done if t["state"] == "complete"]
    best = min(complete, key=lambda t: t["objective"]) if complete else None
    return {"method": method, "seed": seed, "trials": done, "best": best, "spent_s": spent,
            "wall_s": time.time() - started, "runs": len(done), "reused": sum(1 for t in done if t["reused"]),
            "best_is_baseline": best is not None and best["number"] == 0}


def copy_last(source: Path, seed: int, target: Target, folder: Path) -> dict[str, Any]:
    """The naive baseline "copy what worked last time": the configuration the tuner shipped
    in the last campaign on the same data (`source`: its outcome at this method seed on the
    other baseline), checked once as an engineer would: it and the baseline train on the
    method seed's training seed, and it ships only if its validation objective is lower.
    Charged both runs."""
    if not (source / "outcome.json").exists():
        raise RuntimeError(f"copy: nothing to copy yet, {source / 'outcome.json'} is absent (the source cell's "
                           "tuner runs first)")
    copied = {k: v for k, v in json.loads((source / "outcome.json").read_text())["changes"].items()
              if k != "train.seed"}
    seed_knob = {"train.seed": training_seeds(seed)}
    t0 = time.time()
    runner = Runner(target, folder / "runs", MAX_PARALLEL)
    jobs = {"baseline": dict(seed_knob)}
    if copied:
        jobs["copied"] = {**copied, **seed_knob}
    done = runner.run_all(jobs)
    spent = sum(f.cpu_seconds for f in done.values())
    base, mine = done["baseline"].objective, done["copied"].objective if copied else None
    ships = mine is not None and base is not None and mine < base
    return {"method": "copy", "shipped_baseline": not ships, "changes": copied if ships else {},
            "copied_from": str(source), "spent_s": spent, "runs": len(done),
            "reused": sum(1 for f in done.values() if f.reused), "wall_s": time.time() - t0,
            "best_valid": mine if ships else base, "pruned": 0}
