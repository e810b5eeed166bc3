"""A gameday plan: the YAML format (plans/README.md), its validation and the built-in plans.

A plan is data only. It is checked as a whole before anything runs, so that a typo (an unknown experiment, a
variable the experiment does not have, an alert no rule defines) costs a second, not a half-run gameday.
`defaults` are merged into every experiment (the experiment's own keys win, nested mappings key by key).
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from chaoslab import documents
from chaoslab.errors import DocumentError, PlanError
from chaoslab.gameday.score import Weights
from chaoslab.lab.paths import repo_root

BUILTIN = ("quick", "full")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LabSpec(_Strict):
    # At least this many replicas per service: the lab is scaled up when it has fewer (and back afterwards).
    replicas: dict[str, int] = Field(default_factory=dict)
    # The network the plan's experiments need: "isolated" for faults below the application (a lab the gameday
    # starts is started so; a running loopback lab is refused), None: whatever runs.
    network: Literal["loopback", "isolated"] | None = None


class LoadSpec(_Strict):
    scenario: str = "rate"  # a `chaoslab load` scenario (loadtests/scenarios.py)
    rate: float | None = None  # requests/s (rate scenario only)
    users: int | None = None
    baseline_s: float = Field(30.0, ge=0)  # the baseline run, judged by the scenario's thresholds (0: none)
    warmup_s: float = Field(10.0, ge=0)  # background load before the first experiment (sign-ups, windows fill)
    thresholds: list[str] = Field(default_factory=list)  # `chaoslab load --threshold` overrides for the baseline
    # Your own locustfile (relative to the plan): its user classes instead of chaoslab's journeys
    locustfile: str | None = None
    user_classes: list[str] = Field(default_factory=list)  # some of its classes (default: all)

    @property
    def locustfile_path(self) -> Path | None:
        return Path(self.locustfile) if self.locustfile else None


class AlertSpec(_Strict):
    name: str
    labels: dict[str, str] = Field(default_factory=dict)
    max_time_to_detect_s: float = Field(gt=0)  # injection -> firing notification received by the webhook
    must_resolve: bool = True
    max_time_to_resolve_s: float | None = Field(None, gt=0)  # fault undone -> resolved notification received
    fault: str | None = None  # in an entry of overlapping faults: the fault it must be attributed to

    @property
    def key(self) -> str:
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(self.labels.items()))
        return f"{self.name}{{{labels}}}" if labels else self.name


class ClientBudget(_Strict):
    """What Locust's users may see while the fault lasts (from its injection until the steady state is back)."""

    max_error_ratio: float = Field(0.01, ge=0, le=1)
    max_p95_s: float | None = Field(None, gt=0)
    max_p99_s: float | None = Field(None, gt=0)


class SteadySpec(_Strict):
    """What "the steady state holds again" means for time-to-recover: every target of the lab is up and the
    gateway's server error ratio over `window` is at most `max_error_ratio`, for `hold_s` in a row."""

    window: str = "10s"
    max_error_ratio: float = Field(0.01, ge=0, le=1)
    hold_s: float = Field(4.0, ge=0)

    @field_validator("window")
    @classmethod
    def _duration(cls, value: str) -> str:
        from chaoslab.observability.profiles import parse_duration

        parse_duration(value)  # ValueError: not a Prometheus duration
        return value


class FaultSpec(_Strict):
    """One fault of an entry whose faults overlap (chaoslab.gameday.combined): a kind of the catalogue
    (chaoslab.chaos.template.FAULTS, as `chaoslab chaos new --fault`), where, when and for how long."""

    kind: str
    target: str = ""  # a service; "broker" (the default) for the broker fault
    at_s: float = Field(0.0, ge=0)  # from the entry's start
    duration_s: float = Field(gt=0)  # how long it acts before it is undone (a kill: how long it is watched)
    replica: int | Literal["all"] | None = None  # kill/pause: a replica number, None: one drawn from the seed
    params: dict[str, Any] = Field(default_factory=dict)  # the kind's settings: latency_ms, error_percent, ...
    name: str = ""  # default: <kind>-<target>

    @model_validator(mode="after")
    def _defaults(self) -> FaultSpec:
        if not self.target and self.kind == "broker":
            object.__setattr__(self, "target", "broker")
        if not self.name:
            object.__setattr__(self, "name", f"{self.kind}-{self.target}")
        return self


class SafeguardSpec(_Strict):
    """Overlapping faults are stopped and undone when `service` burns its availability error budget faster than
    `max_burn_rate` over `window` (the experiments' safeguard: probes.error_budget_burn_ok)."""

    service: str = "gateway"
    max_burn_rate: float = Field(250.0, gt=0)
    window: str = "10s"


class Hop(_Strict):
    """A call from one service to an upstream (services/contract.py's call graph)."""

    service: str
    upstream: str
    max: int | None = Field(None, ge=1)  # max_attempts only: the most attempts one request may make


class TraceSpec(_Strict):
    """What the traces of the requests made during the fault must show (chaoslab/gameday/traceproof.py)."""

    journey: str = "POST /api/orders"  # the root span compared before and during the fault in the report
    breaker: list[Hop] = Field(default_factory=list)  # the caller's breaker refused calls during the fault
    max_attempts: list[Hop] = Field(default_factory=list)  # no request made more attempts than `max`
    deadline: list[Hop] = Field(default_factory=list)  # no upstream span outlived its caller's attempt
    spans: list[str] = Field(default_factory=list)  # span names that must appear (a fallback ran)


class InhibitedSpec(_Strict):
    """An alert Alertmanager must suppress while another fires (an inhibit rule, checked for real)."""

    name: str
    by: str


class ExperimentSpec(_Strict):
    experiment: str = ""  # a name under chaos/ or a path; or, instead, `faults`
    faults: list[FaultSpec] = Field(default_factory=list)  # faults that overlap, played on a clock
    safeguard: SafeguardSpec = SafeguardSpec()  # for `faults` (an experiment has its own)
    name: str = ""  # how the report calls it (default: the experiment's file name)
    vars: dict[str, Any] = Field(default_factory=dict)  # `chaos run --var`: shorten durations here
    fault_start: str | None = None  # the method activity that injects the fault (default: the first action)
    fault_end: str | None = None  # the action that undoes it, or the probe that sees it gone (default: none,
    # an instant fault such as a SIGKILL)
    alerts: list[AlertSpec] = Field(default_factory=list)
    max_time_to_recover_s: float = Field(60.0, gt=0)
    client: ClientBudget = ClientBudget()
    steady: SteadySpec = SteadySpec()
    data_audit: bool = True
    settle_s: float = Field(90.0, ge=0)  # afterwards, wait up to this for every alert to be quiet again
    # Noise: at most this many page notifications (None: not judged); pages besides the expected alerts that are
    # tolerated (alert names, or "Name (service)"); any other page fails the experiment.
    page_budget: int | None = Field(None, ge=0)
    allowed_pages: list[str] = Field(default_factory=list)
    inhibited: list[InhibitedSpec] = Field(default_factory=list)
    traces: TraceSpec | None = None  # what the traces must prove (None: nothing asserted)
    # The lab topologies it applies to (chaoslab up --topology): on any other it is left out, with a note saying so
    # (a service down does not exist in a monolith, where stopping a module stops the whole process).
    topologies: list[Literal["microservices", "monolith"]] = Field(
        default_factory=lambda: ["microservices", "monolith"], min_length=1)

    @model_validator(mode="after")
    def _default_name(self) -> ExperimentSpec:
        if bool(self.experiment) == bool(self.faults):
            raise ValueError("give either `experiment` (a Chaos Toolkit experiment) or `faults` (faults on a clock)")
        if not self.name:
            object.__setattr__(self, "name", Path(self.experiment).stem if self.experiment
                               else "+".join(f.name for f in self.faults))
        return self


class CoverageSpec(_Strict):
    """`chaoslab coverage` as part of the gameday (after the experiments, under its own light load): the fault x alert
    matrix goes into the report, and every fault that must be detected is a verdict."""

    faults: list[str] = Field(default_factory=list)  # fault kinds (default: every one the lab can run)
    services: list[str] = Field(default_factory=list)  # targets (default: all)
    fault_s: float = Field(15.0, gt=0)


class ScalingSpec(_Strict):
    """`chaoslab scale-test` as part of the gameday (after the experiments, without background load)."""

    service: str = "payments"
    replicas: list[int] = Field(default_factory=lambda: [1, 2, 3], min_length=2)
    duration: str = "50s"
    min_efficiency: float = Field(0.8, gt=0, le=1.5)


class Plan(_Strict):
    name: str
    description: str = ""
    lab: LabSpec = LabSpec()
    load: LoadSpec = LoadSpec()
    experiments: list[ExperimentSpec] = Field(min_length=1)
    coverage: CoverageSpec | None = None
    scaling: ScalingSpec | None = None
    seed: int | None = None  # what is drawn at random (a replica to kill) is drawn from it: `gameday --seed`
    score: Weights = Weights()  # the resilience score's weights (chaoslab.gameday.score)
    source: str = ""  # the file it came from

    @model_validator(mode="before")
    @classmethod
    def _apply_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "defaults" not in data:
            return data
        data = dict(data)
        defaults = data.pop("defaults") or {}
        if not isinstance(defaults, dict):
            raise ValueError("defaults must be a mapping")
        data["experiments"] = [_merge(defaults, e) if isinstance(e, dict) else e
                               for e in data.get("experiments") or []]
        return data

    @field_validator("experiments")
    @classmethod
    def _unique_names(cls, value: list[ExperimentSpec]) -> list[ExperimentSpec]:
        names = [e.name for e in value]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"experiment names must be unique (give `name:`): {', '.join(twice)}")
        return value


def _merge(defaults: dict[str, Any], own: dict[str, Any]) -> dict[str, Any]:
    merged = dict(defaults)
    for key, value in own.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def plans_dir() -> Path:
    return repo_root() / "plans"


def plan_path(name_or_path: str) -> Path:
    """`quick` and `full` are plans/<name>.yaml; anything else is a file."""
    if name_or_path in BUILTIN:
        return plans_dir() / f"{name_or_path}.yaml"
    path = Path(name_or_path)
    if not path.is_file():
        raise PlanError(f"no plan {name_or_path!r}: give quick, full or a YAML or JSON file")
    return path


def _relative_to(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """A plan's experiment files are found from the plan's folder (then by name under chaos/), not from wherever
    the command runs: a plan and its experiments can travel together."""
    from chaoslab.chaos.experiments import resolve

    def located(entry: Any) -> Any:
        if not isinstance(entry, dict) or not isinstance(entry.get("experiment"), str):
            return entry
        try:
            return {"name": Path(entry["experiment"]).stem, **entry,
                    "experiment": str(resolve(entry["experiment"], base))}
        except FileNotFoundError:
            return entry  # reported by check(), with the name as written
    experiments = data.get("experiments")
    if isinstance(experiments, list):
        data = {**data, "experiments": [located(e) for e in experiments]}
    load = data.get("load")
    if isinstance(load, dict) and isinstance(load.get("locustfile"), str):
        data = {**data, "load": {**load, "locustfile": str((base / load["locustfile"]).resolve())}}
    return data


def parse(data: Any, source: str = "", base: Path | None = None) -> Plan:
    """A plan from its data; PlanError with every problem (path: message) when it is not valid. Experiment files
    are resolved from `base` (the plan's folder)."""
    if not isinstance(data, dict):
        raise PlanError(f"{source or 'the plan'}: a plan is a mapping (keys and values)")
    if base is not None:
        data = _relative_to(data, base)
    try:
        plan = Plan.model_validate({**data, "source": source})
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in e['loc']) or '(plan)'}: {e['msg']}" for e in exc.errors()]
        raise PlanError(f"{source or 'the plan'} is not valid:\n  " + "\n  ".join(problems)) from None
    problems = check(plan)
    if problems:
        raise PlanError(f"{source or 'the plan'} is not valid:\n  " + "\n  ".join(problems))
    return plan


def load(name_or_path: str) -> Plan:
    """A plan by name (quick, full) or file (YAML or JSON); PlanError naming the file (and line) otherwise."""
    path = plan_path(name_or_path)
    try:
        data = documents.load(path)
    except DocumentError as exc:
        raise PlanError(exc.message) from None
    return parse(data, str(path), path.resolve().parent)


# --- checks against the project: experiments, variables, activities, alerts, scenarios ------------------------

def _faults_problems(spec: ExperimentSpec) -> list[str]:
    """An entry of overlapping faults: kinds, targets and settings the catalogue has, no two faults on one target
    at once, alerts attributed to faults the entry has."""
    from chaoslab.chaos.schedule import Planned, problems
    from chaoslab.lab.ports import SERVICES

    where = f"experiments.{spec.name}"
    out = [f"{where}.{field}: not for an entry of faults (each fault has its own times)"
           for field in ("fault_start", "fault_end") if getattr(spec, field) is not None]
    if spec.vars:
        out.append(f"{where}.vars: not for an entry of faults (give each fault its params)")
    planned = [Planned(f.name, f.kind, f.target, f.at_s, f.duration_s,
                       f.replica if f.replica is not None else ("all" if f.kind not in ("kill", "pause", "memory")
                                                                else 1), dict(f.params)) for f in spec.faults]
    out += [f"{where}.faults: {problem}" for problem in problems(planned, dict.fromkeys(SERVICES, 99))]
    names = {f.name for f in spec.faults}
    out += [f"{where}.alerts.{a.name}.fault: no fault {a.fault!r} in this entry ({', '.join(sorted(names))})"
            for a in spec.alerts if a.fault is not None and a.fault not in names]
    return out


def _experiment_problems(spec: ExperimentSpec, base: Path | None) -> list[str]:
    from chaoslab.chaos.experiments import resolve, unknown_variables

    if spec.faults:
        return _faults_problems(spec)
    where = f"experiments.{spec.name}"
    try:
        data = documents.load_mapping(resolve(spec.experiment, base), "an experiment")
    except FileNotFoundError as exc:
        return [f"{where}: {exc}"]
    except DocumentError as exc:
        return [f"{where}: {exc.message}"]
    problems = [f"{where}.vars.{key}: {problem}" for key, problem in unknown_variables(data, spec.vars).items()]
    method = [a.get("name") for a in data.get("method", [])]
    for field in ("fault_start", "fault_end"):
        name = getattr(spec, field)
        if name is not None and name not in method:
            problems.append(f"{where}.{field}: no method activity {name!r} (it has: {', '.join(map(str, method))})")
    if not any(a.get("type") == "action" for a in data.get("method", [])) and spec.fault_start is None:
        problems.append(f"{where}: the method has no action; name the fault's activity with fault_start")
    return problems


def _alert_problems(alert: AlertSpec, catalogue: dict[str, dict[str, set[str] | None]]) -> list[str]:
    """An expected alert the catalogue cannot produce: an unknown name, a label its rules never carry, or a value
    its rules never give (a typo would otherwise wait out max_time_to_detect_s for an alert that cannot come)."""
    if alert.name not in catalogue:
        close = difflib.get_close_matches(alert.name, catalogue, n=1)
        return [f"no alert rule {alert.name!r}" + (f" (did you mean {close[0]!r}?)" if close else "")]
    known = catalogue[alert.name]
    problems = []
    for key, value in alert.labels.items():
        if key not in known:
            problems.append(f"label {key!r}: {alert.name} never carries it (it has: {', '.join(sorted(known))})")
        elif known[key] is not None and value not in known[key]:  # type: ignore[operator]
            problems.append(f"label {key}={value!r}: {alert.name} has {key} one of "
                            f"{', '.join(sorted(known[key] or ()))}")
    return problems


def check(plan: Plan) -> list[str]:
    """Problems a schema cannot see: names that must exist in the project."""
    from chaoslab.lab.ports import SERVICES
    from chaoslab.observability.alerts import alert_labels
    from loadtests import scenarios
    from loadtests.thresholds import apply_overrides

    problems: list[str] = []
    for service, count in plan.lab.replicas.items():
        if service not in SERVICES:
            problems.append(f"lab.replicas.{service}: not a service ({', '.join(SERVICES)})")
        elif count < 1:
            problems.append(f"lab.replicas.{service}: at least 1")
    try:
        scenario = scenarios.get(plan.load.scenario)
        params = scenario.params(plan.load.users, None, plan.load.rate)
        apply_overrides(scenarios.thresholds_for(scenario, params), plan.load.thresholds)
    except ValueError as exc:
        problems.append(f"load: {exc}")
    if plan.load.locustfile_path is not None:
        from chaoslab.errors import LoadError
        from chaoslab.load.runner import check_locustfile

        try:
            check_locustfile(plan.load.locustfile_path, plan.load.user_classes)
        except LoadError as exc:
            problems.append(f"load.locustfile: {exc.message}")
    elif plan.load.user_classes:
        problems.append("load.user_classes: these pick classes of load.locustfile; name the file too")
    catalogue = alert_labels()
    base = Path(plan.source).resolve().parent if plan.source else None
    for spec in plan.experiments:
        problems.extend(_experiment_problems(spec, base))
        for alert in spec.alerts:
            where = f"experiments.{spec.name}.alerts.{alert.name}"
            problems.extend(f"{where}: {problem}" for problem in _alert_problems(alert, catalogue))
            if alert.fault is not None and not spec.faults:
                problems.append(f"{where}.fault: only an entry of `faults` attributes alerts to faults")
        for allowed in spec.allowed_pages:
            if allowed.split(" (")[0] not in catalogue:
                problems.append(f"experiments.{spec.name}.allowed_pages: no alert rule {allowed.split(' (')[0]!r}")
        if spec.traces is not None:
            for kind in ("breaker", "max_attempts", "deadline"):
                for hop in getattr(spec.traces, kind):
                    for name in (hop.service, hop.upstream):
                        if name not in SERVICES:
                            problems.append(f"experiments.{spec.name}.traces.{kind}: not a service: {name!r}")
                    if kind == "max_attempts" and hop.max is None:
                        problems.append(f"experiments.{spec.name}.traces.max_attempts: give max")
        for item in spec.inhibited:
            for name in (item.name, item.by):
                if name not in catalogue:
                    problems.append(f"experiments.{spec.name}.inhibited: no alert rule {name!r}")
    if plan.coverage is not None:
        # the matrix's own check (chaoslab.gameday.coverage builds its cells from it); plan cannot import coverage,
        # which reads plans
        from chaoslab.chaos.template import fault_targets

        try:
            fault_targets(plan.coverage.faults or None, plan.coverage.services or None,
                          isolated=plan.lab.network == "isolated")
        except ValueError as exc:
            problems.append(f"coverage: {exc}")
    if plan.scaling is not None and plan.scaling.service not in SERVICES:
        problems.append(f"scaling.service: not a service ({', '.join(SERVICES)})")
    return problems
