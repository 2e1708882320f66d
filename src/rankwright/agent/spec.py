"""The campaign spec: one YAML naming the target, objective, budget, parallelism, the
paths the agent may write, the knob changes it must try, and the strategy the engineer
approves (phase shares, search space, fidelities, seeds, statistics).

Loading validates everything a person can get wrong, including knob names and ranges
against the target's schema, before the store is touched.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from rankwright.targets import Target, TargetError, builtin_target, load_target
from rankwright.yaml_files import read_yaml


class SpecError(ValueError):
    """A campaign spec is wrong; the message names the file and the field."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Objective(_Frozen):
    metric: str = Field("valid.ne", min_length=1, description="dotted path in the run's result")
    direction: Literal["minimize", "maximize"] = "minimize"


class Budget(_Frozen):
    amount: float = Field(gt=0, description="approved compute, in `unit`")
    unit: Literal["cpu_hours", "gpu_hours"] = "cpu_hours"
    pause_threshold: float = Field(0.8, gt=0, le=1, description="pause when this share is committed")
    hard_cap: float | None = Field(None, gt=0, description="halt and cancel at this spend (default: amount)")

    @model_validator(mode="after")
    def _cap_not_below_amount(self) -> "Budget":
        if self.hard_cap is not None and self.hard_cap < self.amount:
            raise ValueError(f"hard_cap {self.hard_cap} is below the approved amount {self.amount}")
        return self


class Change(_Frozen):
    name: str = Field(min_length=1, max_length=200)
    set: dict[str, Any] = Field(min_length=1, description="knob path -> value")
    reason: str = ""


class HypothesisPolicy(_Frozen):
    """How many of the hypothesis engine's ranked hypotheses the validation phase tests."""

    top_k: int = Field(0, ge=0, le=200, description="hypotheses per validation round from the engine besides "
                                                      "`changes` (0: the spec's changes only)")
    seeds: int = Field(2, ge=1, le=20, description="seeds per hypothesis in validation (paired with the baseline's)")
    use_llm: bool = Field(True, description="ask the LLM when one is configured (RANKWRIGHT_LLM_*)")


class PhaseShares(_Frozen):
    """How the plannable budget is split; what a phase leaves unused flows to the next."""

    validation: float = Field(0.5, ge=0, le=1)
    combination: float = Field(0.25, ge=0, le=1)
    exploitation: float = Field(0.25, ge=0, le=1)

    @model_validator(mode="after")
    def _sum_to_one(self) -> "PhaseShares":
        total = self.validation + self.combination + self.exploitation
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"the phase shares must add up to 1 (they add up to {total:g})")
        return self

    def of(self, phase: str) -> float:
        return float(getattr(self, phase))


class SearchRange(_Frozen):
    """One knob the exploitation phase may tune, and what is approved for it: a numeric range
    (`low`..`high`, on a log scale or not, integers or not) or a list of `choices` (a layer
    shape, an optimizer, a batch size: anything a tuner picks from a list)."""

    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False
    choices: tuple[Any, ...] | None = Field(None, description="the values it may take, instead of low..high")

    @model_validator(mode="after")
    def _ordered(self) -> "SearchRange":
        if self.choices is not None:
            if self.low is not None or self.high is not None or self.log or self.integer:
                raise ValueError("give either choices or low/high (with log, integer), not both")
            if not self.choices:
                raise ValueError("choices must not be empty")
            options = [self.option(c) for c in self.choices]
            for choice, option in zip(self.choices, options):
                if not isinstance(option, (str, int, float, bool, type(None))):
                    raise ValueError(f"choice {choice!r}: a choice is a number, a string, a boolean, null or a "
                                     "list of numbers")
            if len(set(map(repr, options))) < len(options):
                raise ValueError(f"choices repeat a value: {list(self.choices)!r}")
            return self
        if self.low is None or self.high is None:
            raise ValueError("a range needs low and high (or give choices)")
        if not self.low < self.high:
            raise ValueError(f"low {self.low:g} must be below high {self.high:g}")
        if self.log and self.low <= 0:
            raise ValueError("a log range needs low > 0")
        return self

    @staticmethod
    def option(value: Any) -> Any:
        """A choice as Optuna holds it: a list (a layer shape) as "256-128", anything else as is."""
        if isinstance(value, (list, tuple)):
            return "-".join(str(v) for v in value)
        return value

    def contains(self, value: Any) -> bool:
        if self.choices is not None:
            return any(same_value(value, c) for c in self.choices)
        return isinstance(value, (int, float)) and not isinstance(value, bool) and self.low <= value <= self.high

    def decode(self, param: Any) -> Any:
        """A trial's parameter as the knob's value (a layer shape back to a list)."""
        if self.choices is None:
            return param
        for choice in self.choices:
            if same_value(self.option(choice), param):
                return list(choice) if isinstance(choice, (list, tuple)) else choice
        raise ValueError(f"{param!r} is none of the choices {list(self.choices)!r}")

    def holds(self, value: Any) -> bool:
        """Whether `encode` gives the value a parameter: one of the choices, or any number."""
        if self.choices is not None:
            return self.contains(value)
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    def encode(self, value: Any) -> Any:
        """A knob's value (one the range `holds`) as a parameter: a number outside the range
        moves to its nearer end (an L2 of 0 to the low end of its log range, as good as off)."""
        if self.choices is not None:
            return self.option(next(c for c in self.choices if same_value(value, c)))
        value = min(max(value, self.low), self.high)
        return int(round(value)) if self.integer else float(value)

    def shown(self) -> str:
        """In words, for the plan and a guardrail's message."""
        if self.choices is not None:
            return "one of " + " | ".join(str(self.option(c)) for c in self.choices)
        return f"[{self.low:g}, {self.high:g}]" + (" log" if self.log else "")


def same_value(a: Any, b: Any) -> bool:
    """Equal as knob values: a list and a tuple of the same numbers are, True and 1 are not."""
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        return isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b) \
            and all(same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        return type(a) is type(b) and a == b
    return a == b


class Strategy(_Frozen):
    """What the engineer approves besides the budget. Inside it the agent re-plans alone;
    a re-plan that would leave it pauses the campaign and asks."""

    phases: PhaseShares = Field(default_factory=PhaseShares)
    low_fidelity: dict[str, Any] | None = Field(
        None, description="knob changes of a validation run (default on the built-in target: half the "
                          "training rows); {} runs validation at full fidelity")
    rounds: int = Field(3, ge=1, le=50, description="validation rounds at most")
    extra_seeds: int = Field(2, ge=0, le=20, description="seeds added to a borderline hypothesis before its verdict")
    full_seeds: int = Field(3, ge=2, le=50, description="seeds per arm at full fidelity (combination)")
    confirmation_seeds: int = Field(5, ge=3, le=100, description="seeds of the final winner-vs-baseline check")
    fidelity_check_rejected: int = Field(2, ge=0, le=20,
                                         description="rejected hypotheses re-run at full fidelity as a check")
    alpha: float = Field(0.1, gt=0, lt=0.5, description="error rate of a verdict, after the correction")
    correction: Literal["holm", "bh"] = "holm"
    margin: float = Field(0.002, gt=0, lt=0.5,
                          description="smallest relative gain worth having; below it a technique is retired")
    trials: int = Field(10_000, ge=0, le=10_000,
                        description="exploitation trials at most (default: as many as the budget allows, less the "
                                    "confirmation's reserve, until `patience` stops them)")
    patience: int = Field(20, ge=1, le=10_000,
                          description="exploitation stops after this many trials in a row that did not improve the "
                                      "best seed-1 objective by more than `margin`, decided before the first trial")
    sampler: Literal["tpe", "gp"] = "tpe"
    prune: bool = Field(True, description="cancel exploitation trials that the median pruner rejects")
    search_space: dict[str, SearchRange] | None = Field(
        None, description="knobs the exploitation phase may tune, each a range or a list of choices (default: "
                          "around the baseline, on every knob a tuner would search)")
    techniques: tuple[str, ...] | None = Field(None, description="knowledge-base techniques allowed (default: all)")
    ship: Literal["expected", "confirmed"] = Field(
        "expected", description="what the proposal ships, decided on validation only: 'expected' ships the arm "
                                "with the best expected gain over the baseline (with the probability that it "
                                "beats it); 'confirmed' ships only an arm whose paired 95% interval is "
                                "wholly a gain")


class ExecutorSpec(_Frozen):
    """Where runs happen. `local` (processes on this machine), `slurm` (sbatch jobs) or `ray`
    (Ray jobs); on a cluster, each run's wrapper reports to the store (`RANKWRIGHT_DB`), which
    the cluster's hosts must reach."""

    kind: Literal["local", "slurm", "ray"] = "local"
    python: str | None = Field(None, description="Python with Rankwright on the cluster's hosts (default: this one)")
    cpus_per_run: int = Field(1, ge=1, le=1024, description="CPUs each cluster run asks for")
    memory_mb: int | None = Field(None, ge=1, description="memory each cluster run asks for")
    partition: str | None = Field(None, description="Slurm partition")
    account: str | None = Field(None, description="Slurm account")
    extra_args: tuple[str, ...] = Field((), description="further sbatch flags, as they are")
    log_dir: str = Field("/tmp", description="Slurm: where the job's own output goes, on the run's host")
    address: str | None = Field(None, description="Ray: the dashboard's address (default: RAY_ADDRESS, "
                                                  "else http://127.0.0.1:8265)")
    heartbeat_s: float = Field(10.0, ge=0.5, le=600.0,
                               description="how often a cluster run reports that it lives; a started run whose "
                                           "job the engine no longer has is lost after 3 of these in silence")


class PortfolioLink(_Frozen):
    """The portfolio a campaign runs in (written by `rankwright portfolio plan`)."""

    file: str = Field(description="the portfolio YAML, absolute")
    name: str
    priority: float = Field(1.0, gt=0)


class CampaignSpec(_Frozen):
    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    target: str = Field("builtin", description="'builtin' or the path of a target YAML")
    model: str = Field("dnn", description="model of the built-in target")
    base_config: dict[str, Any] = Field(default_factory=dict, description="run config the experiments start from")
    objective: Objective = Field(default_factory=Objective)
    budget: Budget
    max_parallel: int = Field(2, ge=1, le=1024)
    run_timeout_s: float | None = Field(None, gt=0, description="a run going longer is cancelled as timed out "
                                                                 "(default: 10x its predicted time, at least 10 min)")
    gpus_per_run: int | None = Field(None, ge=0, le=64,
                                     description="GPUs each run gets (default: 1 on a gpu_hours budget, else 0)")
    baseline_seeds: int = Field(3, ge=1, le=100, description="baseline repeats that measure the noise")
    first_seed: int = Field(1, ge=0, le=2**31 - 1000, description="training seed of every arm's first repeat; repeat "
                            "n trains on first_seed + n - 1 (two campaigns with other first seeds share no "
                            "training seed)")
    allowed_paths: tuple[str, ...] = Field((".rankwright",), min_length=1)
    changes: tuple[Change, ...] = ()
    hypotheses: HypothesisPolicy = Field(default_factory=HypothesisPolicy)
    strategy: Strategy = Field(default_factory=Strategy)
    runbook: str | None = Field(None, description="YAML whose failure kinds replace or add to the shipped runbook")
    executor: ExecutorSpec | None = Field(None, description="where runs happen (default: this machine)")
    portfolio: PortfolioLink | None = Field(None, description="set by `rankwright portfolio plan`")


def stored_as_now(stored: dict[str, Any]) -> dict[str, Any]:
    """A spec the store kept (as `model_dump` wrote it, perhaps by an earlier version) read
    under this version's schema: a field added since then, at its default, is then no
    change of an approved spec. One that no longer validates is compared as it was kept."""
    try:
        return CampaignSpec.model_validate(stored).model_dump(mode="json")
    except ValidationError:
        return stored


def _paths_from(base_config: dict[str, Any], folder: Path) -> dict[str, Any]:
    """The base config with its relative data paths made absolute from the spec's folder:
    one rule for every relative path a person writes in a file (a run config's paths start
    at the run config's folder, a spec's at the spec's)."""
    import copy

    data = base_config.get("data") if isinstance(base_config, dict) else None
    if not isinstance(data, dict):
        return base_config
    out = copy.deepcopy(base_config)
    for role in ("train", "valid", "test"):
        value = data.get(role)
        if isinstance(value, str) and value and not Path(value).is_absolute():
            out["data"][role] = str((folder / value).resolve())
    return out


def training_seed(spec: CampaignSpec, repeat: int) -> int:
    """The seed a repeat trains on: repeat numbers name runs, the first seed moves them."""
    return spec.first_seed + repeat - 1


def gpus_per_run(spec: CampaignSpec) -> int:
    if spec.gpus_per_run is not None:
        return spec.gpus_per_run
    return 1 if spec.budget.unit == "gpu_hours" else 0


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The keys a spec may have at `loc` (the parent of an unknown key), for a did-you-mean."""
    for part in loc:
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None)
        candidates = [a for a in (annotation, *getattr(annotation, "__args__", ())) if isinstance(a, type)]
        nested = next((a for a in candidates if issubclass(a, BaseModel)), None)
        if nested is None:
            return []
        model = nested
    return list(model.model_fields)


def _describe(error: dict[str, Any]) -> str:
    import difflib

    where = ".".join(str(p) for p in error["loc"]) or "(top level)"
    message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
    if error["type"] == "extra_forbidden":
        known = _fields_at(CampaignSpec, tuple(error["loc"][:-1]))
        close = difflib.get_close_matches(str(error["loc"][-1]), known, n=1, cutoff=0.6)
        message += f"; did you mean {close[0]!r}?" if close else (f"; known: {', '.join(known)}" if known else "")
    elif error["type"] == "string_pattern_mismatch" and error["loc"] == ("name",):
        message = ("a campaign name starts with a letter or digit and has only letters, digits, '_', '.' and '-'"
                   f" (got {error.get('input')!r})")
        return f"{where}: {message}"
    if error["type"] not in ("missing", "extra_forbidden") and "input" in error:
        message += f" (got {error['input']!r})"
    return f"{where}: {message}"


def load_campaign(path: Path) -> tuple[CampaignSpec, Target]:
    """Read, validate and resolve a campaign spec; raises `SpecError` naming what is wrong."""
    path = Path(path)
    document = read_yaml(path, SpecError, "campaign spec")
    if not isinstance(document, dict):
        raise SpecError(f"{path}: expected a mapping (name, target, budget, ...)")
    try:
        spec = CampaignSpec.model_validate(document)
    except ValidationError as exc:
        raise SpecError(f"{path}: invalid campaign spec\n  " + "\n  ".join(_describe(e) for e in exc.errors())) from None
    try:
        if spec.target == "builtin":
            target = builtin_target(spec.model, _paths_from(spec.base_config, path.parent))
        else:
            target_path = Path(spec.target)
            target = load_target(target_path if target_path.is_absolute() else path.parent / target_path)
    except TargetError as exc:
        raise SpecError(f"{path}: target: {exc}") from None
    if target.cost.unit != spec.budget.unit:
        raise SpecError(f"{path}: budget.unit is {spec.budget.unit} but target {target.name!r} measures its cost in "
                        f"{target.cost.unit}: spending could not be charged against the budget. Give the budget in "
                        f"{target.cost.unit}, or a target whose cost model is in {spec.budget.unit}")
    if spec.runbook is not None:
        from rankwright.agent.runbook import RunbookError, load_runbook

        runbook_path = Path(spec.runbook) if Path(spec.runbook).is_absolute() else path.parent / spec.runbook
        try:
            load_runbook(runbook_path)
        except RunbookError as exc:
            raise SpecError(f"{path}: runbook: {exc}") from None
        spec = spec.model_copy(update={"runbook": str(runbook_path.resolve())})
    for i, change in enumerate(spec.changes):
        try:
            target.validate_changes(change.set)
        except TargetError as exc:
            raise SpecError(f"{path}: changes[{i}] ({change.name}): {exc}") from None
    try:
        # the knobs only: whether the cost model makes it worth using is the plan's question
        # (answering it here would build the model, and a wake must not import torch)
        target.validate_changes(dict(spec.strategy.low_fidelity) if spec.strategy.low_fidelity is not None
                                else target.low_fidelity())
    except TargetError as exc:
        raise SpecError(f"{path}: strategy.low_fidelity: {exc}") from None
    for knob, bounds in (spec.strategy.search_space or {}).items():
        values = [bounds.decode(bounds.option(c)) for c in bounds.choices] if bounds.choices is not None else \
            [int(v) if bounds.integer else v for v in (bounds.low, bounds.high)]
        try:
            for value in values:
                target.validate_changes({knob: value})
        except TargetError as exc:
            raise SpecError(f"{path}: strategy.search_space.{knob}: {exc}") from None
    return spec, target


# A validation run at low fidelity is worth its noise only if it is clearly cheaper. Small
# runs are dominated by start-up, loading and the final evaluation (3.8 s of a 4 s Frappe
# run at one epoch): half the rows then saves ~3% and costs a fidelity check later.
LOW_FIDELITY_MIN_SAVING = 0.25


def fidelity_saving(spec: CampaignSpec, target: Target) -> float | None:
    """Share of a full run's predicted cost that the target's low fidelity saves (None when
    the target has none)."""
    low = target.low_fidelity()
    if not low:
        return None
    full = target.predict_hours({}, parallel=spec.max_parallel)
    return 1.0 - target.predict_hours(low, parallel=spec.max_parallel) / full if full > 0 else 0.0


def low_fidelity(spec: CampaignSpec, target: Target) -> dict[str, Any]:
    """The knob changes of a validation run: the spec's, else the target's own (half the
    rows on the built-in target; none on a target that does not say) when its cost model
    predicts it saves at least `LOW_FIDELITY_MIN_SAVING` of a full run, else none."""
    if spec.strategy.low_fidelity is not None:
        return dict(spec.strategy.low_fidelity)
    saving = fidelity_saving(spec, target)
    if saving is None or saving < LOW_FIDELITY_MIN_SAVING:
        return {}
    return target.low_fidelity()


def search_space(spec: CampaignSpec, target: Target) -> dict[str, SearchRange]:
    """The exploitation phase's knobs and what is approved for each: the spec's, else a
    default around the baseline over what a tuner would search, each inside the knob's own
    bounds. On any target, the knobs found by role: the learning rate x0.1..x10 (log), the
    batch size x1/4..x4, epochs 1..max(10, the baseline's), the optimizer, the layer shapes
    (half, the same or double width; the baseline's depth or one more), dropout 0..0.5,
    embedding width x1/2..x2 (log), weight decay and embedding and dense L2 on log ranges
    (widened to hold the baseline's value), batch norm. On the built-in target also the
    schedule, warm-up, gradient clipping, early stopping's patience, mixed precision, the
    activation, the embeddings' initial scale and the vocabulary's min count: the ranges the
    head-to-head benchmark's peers search (`bench.tasks.peer_space`), so both search the
    same space. A list of choices always holds the baseline's own value, so the baseline
    (and the best combination) can be told to the tuner. Shown in the plan, so the engineer
    approves it."""
    import math

    if spec.strategy.search_space is not None:
        return dict(spec.strategy.search_space)
    knobs = {k.path: k for k in target.knobs}
    roles = {role: path for role, path in target.role_paths().items() if path in knobs}
    base = target.base_config if isinstance(target.base_config, dict) else {}
    space: dict[str, SearchRange] = {}

    def current(path: str) -> Any:
        node: Any = base
        for part in path.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        return node if node is not None else knobs[path].default

    def valid(path: str, value: Any) -> bool:
        try:
            target.validate_changes({path: value})
        except TargetError:
            return False
        return True

    def number(value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    def span(path: str, low: float, high: float, log: bool = False, integer: bool = False) -> None:
        knob = knobs[path]
        low, high = (low if knob.low is None else max(low, knob.low)), (high if knob.high is None else
                                                                          min(high, knob.high))
        if integer:
            low, high = math.ceil(low), math.floor(high)
        if low < high and (low > 0 or not log) and valid(path, low) and valid(path, high):
            space[path] = SearchRange(low=low, high=high, log=log, integer=integer)

    def pick(path: str, options: list[Any]) -> None:
        choices: list[Any] = []
        for option in [*options, current(path)]:
            option = list(option) if isinstance(option, tuple) else option
            if valid(path, option) and not any(same_value(option, c) for c in choices):
                choices.append(option)
        if len(choices) >= 2:
            space[path] = SearchRange(choices=tuple(choices))

    def log_span(path: str, low: float, high: float) -> None:
        """A penalty's log range, widened to hold the baseline's value (an L2 of 0 is its low end)."""
        value = current(path)
        if knobs[path].kind == "float":
            if number(value) and value > 0:
                low, high = min(low, value / 30), max(high, value * 3)
            span(path, low, high, log=True)

    path = roles.get("learning_rate")
    if path and number(current(path)) and current(path) > 0:
        span(path, current(path) / 10, min(current(path) * 10, 1.0), log=True)
    path = roles.get("batch_size")
    if path and number(current(path)) and current(path) >= 1:
        size = int(current(path))
        pick(path, [s for s in (size // 4, size // 2, size, size * 2, size * 4) if s >= 1])
    path = roles.get("epochs")
    if path and number(current(path)) and current(path) >= 1:
        span(path, 1, max(10, int(current(path))), integer=True)
    path = roles.get("optimizer")
    if path and knobs[path].choices:
        pick(path, list(knobs[path].choices))
    path, shapes = roles.get("hidden_units"), []
    if path and isinstance(current(path), (list, tuple)) and current(path) \
            and all(number(u) and u >= 1 for u in current(path)):
        for scale in (0.5, 1, 2):  # each layer half, as wide or twice; as deep, or one more layer of half width
            units = [max(8, int(u * scale)) for u in current(path)]
            shapes.extend([units, [*units, max(8, units[-1] // 2)]])
        pick(path, sorted(shapes, key=SearchRange.option))
    path = roles.get("dropout")
    if path and knobs[path].kind == "float":
        value = current(path)
        span(path, 0.0, max(0.5, value if number(value) else 0.0))
    path = roles.get("embedding_dim")
    if path and number(current(path)) and current(path) >= 2:
        dim = int(current(path))
        span(path, max(2, dim // 2), dim * 2, log=True, integer=True)
    for role, low, high in (("weight_decay", 1e-7, 1e-1), ("embedding_l2", 1e-8, 1e-2), ("dense_l2", 1e-8, 1e-3)):
        if role in roles:
            log_span(roles[role], low, high)
    path = roles.get("batch_norm")
    if path and knobs[path].kind == "bool":
        pick(path, [False, True])
    if spec.target != "builtin":
        return space
    # the rest of what the benchmark's peers search on the built-in target
    for path, options in (("train.schedule", None), ("train.warmup_steps", [0, 500]),
                          ("train.grad_clip_norm", [1.0, 10.0]), ("train.mixed_precision", ["auto", "bf16"]),
                          ("model.activation", ["relu", "gelu"])):
        if path in knobs:
            pick(path, list(knobs[path].choices or ()) if options is None else options)
    path = "train.early_stopping_patience"
    if path in knobs:
        value = current(path)
        if number(value) and value >= 1:
            span(path, 1, max(3, int(value)), integer=True)
        else:  # no early stopping in the baseline: off stays a choice
            pick(path, [1, 2, 3])
    path = "model.embedding_init_std"
    if path in knobs and number(current(path)) and current(path) > 0:
        span(path, min(1e-5, current(path) / 3), max(1e-2, current(path) * 3), log=True)
    path = "data.processing.min_count"
    if path in knobs and number(current(path)) and current(path) >= 1:
        span(path, 1, max(10, int(current(path))), log=True, integer=True)
    return space
