"""chaoslab's load test, runnable by plain Locust anywhere (native lab, compose, the k8s Job):

    locust -f loadtests/locustfile.py --host http://127.0.0.1:18000                    # web UI, shoppers + admin
    locust -f loadtests/locustfile.py --host URL --headless --scenario ramp --peak-users 40 --duration 5m
    locust -f loadtests/locustfile.py --host URL --headless --scenario rate --rate 25 --summary-file out.json

Every option also comes from the environment (LOCUST_SCENARIO, LOCUST_PEAK_USERS, LOCUST_DURATION, LOCUST_RATE,
LOCUST_MIX, LOCUST_THRESHOLDS, LOCUST_SUMMARY_FILE, LOCUST_METRICS_PORT, LOCUST_METRICS_HOST). With a scenario
the run follows its shape, then its thresholds decide the exit code (0 held, 1 violated), so a CI job or a
Kubernetes Job fails when the shop got slow. Without one it is ordinary Locust (-u, -r, -t, or the UI).
`chaoslab load` (chaoslab/load) runs this file for the native lab and reads the summary it writes.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any

from locust import LoadTestShape, events
from locust.runners import MasterRunner, WorkerRunner

from loadtests import exporter, scenarios, shapes
from loadtests.journeys import AdminUser, OrderUser, RateShopper, ShopperUser
from loadtests.recorder import StageRecorder
from loadtests.summary import snapshot, summarize
from loadtests.thresholds import apply_overrides, evaluate

__all__ = ["AdminUser", "OrderUser", "RateShopper", "ShopperUser", "ScenarioShape"]

log = logging.getLogger("chaoslab.load")

MIX_CLASSES: dict[str, list[type]] = {
    scenarios.MIX_SHOP: [ShopperUser, AdminUser],
    scenarios.MIX_RATE: [RateShopper],
    scenarios.MIX_ORDERS: [OrderUser],
}


@events.init_command_line_parser.add_listener
def add_arguments(parser: Any) -> None:
    # On the parser itself, not an argument group: only Locust's parser knows include_in_web_ui. The options that
    # are shown appear in the web UI's custom parameters, so a scenario can be chosen there too.
    parser.add_argument("--scenario", env_var="LOCUST_SCENARIO", default="",
                       help=f"one of {', '.join(scenarios.SCENARIOS)}; empty: plain Locust (-u/-r/-t)")
    parser.add_argument("--peak-users", env_var="LOCUST_PEAK_USERS", type=int, default=0,
                       help="the scenario's peak users (0: its default; for rate: rate x 1 s)")
    parser.add_argument("--duration", env_var="LOCUST_DURATION", default="",
                       help="the scenario's duration: 90, 90s, 5m, 1h30m (empty: its default)")
    parser.add_argument("--rate", env_var="LOCUST_RATE", type=float, default=0.0,
                       help="requests/s for the rate scenario (0: its default)")
    parser.add_argument("--mix", env_var="LOCUST_MIX", default="",
                       help=f"journey mix, one of {', '.join(scenarios.MIXES)} (empty: the scenario's)")
    parser.add_argument("--custom-users", env_var="LOCUST_CUSTOM_USERS", default="", include_in_web_ui=False,
                       help="with --mix custom: the user classes of your locustfile to run, separated by ',' "
                            "(empty: all of them)")
    parser.add_argument("--thresholds", env_var="LOCUST_THRESHOLDS", default="",
                       help="threshold overrides separated by ';', e.g. 'p95=300;error_ratio=0.02'")
    parser.add_argument("--summary-file", env_var="LOCUST_SUMMARY_FILE", default="", include_in_web_ui=False,
                       help="write the run's summary, per-stage measurements and verdict here (JSON)")
    parser.add_argument("--metrics-port", env_var="LOCUST_METRICS_PORT", type=int, default=exporter.DEFAULT_PORT,
                       include_in_web_ui=False, help="Prometheus exporter port (0: off)")
    parser.add_argument("--metrics-host", env_var="LOCUST_METRICS_HOST", default="0.0.0.0", include_in_web_ui=False,
                       help="Prometheus exporter bind address")


class RunPlan:
    """What this run is, resolved once from the options (the same on master and workers)."""

    def __init__(self, options: Any) -> None:
        self.scenario = scenarios.get(options.scenario) if options.scenario else None
        self.mix = options.mix or (self.scenario.mix if self.scenario else scenarios.MIX_SHOP)
        if self.mix not in MIX_CLASSES and self.mix != scenarios.MIX_CUSTOM:
            raise ValueError(f"unknown mix {self.mix!r}; known: {', '.join(scenarios.MIXES)}")
        self.custom_users = [n.strip() for n in (getattr(options, "custom_users", "") or "").split(",") if n.strip()]
        self.params: scenarios.Params | None = None
        self.stages: list[shapes.Stage] = []
        self.thresholds = None
        if self.scenario is not None:
            self.params = self.scenario.params(
                users=options.peak_users or None,
                duration_s=scenarios.parse_duration(options.duration) if options.duration else None,
                rate=options.rate or None,
            )
            self.stages = self.scenario.plan(self.params)
            overrides = [t for t in options.thresholds.split(";") if t.strip()]
            self.thresholds = apply_overrides(scenarios.thresholds_for(self.scenario, self.params, self.mix),
                                              overrides)

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario.name if self.scenario else None,
            "mix": self.mix,
            "params": vars(self.params) if self.params else None,
            "stages": [vars(s) for s in self.stages],
            "thresholds": self.thresholds.to_json() if self.thresholds else None,
        }


PLAN: RunPlan | None = None
WORKERS = 0  # the most workers seen at a test start (distributed mode)


class ScenarioShape(LoadTestShape):
    """Follows the selected scenario's plan and measures each stage; without a scenario it is plain Locust (the
    users and spawn rate of -u/-r or of the web UI, until --run-time), so a scenario typed into the web UI's
    custom fields takes effect at the next start.
    """

    use_common_options = True  # the web UI keeps its users/spawn-rate fields for plain runs

    def __init__(self) -> None:
        super().__init__()
        self.recorder: StageRecorder | None = None

    def reset_time(self) -> None:
        super().reset_time()
        self.recorder = None
        runner = self.runner
        if runner is None:
            return
        _replan(runner.environment)  # the web UI may have changed the options since Locust started
        if PLAN is not None and PLAN.scenario is not None:
            self.recorder = StageRecorder(PLAN.stages, lambda: snapshot(runner.stats), lambda: runner.user_count)

    def tick(self) -> tuple[int, float] | None:
        if PLAN is None or self.runner is None:
            return None
        t = self.get_run_time()
        if PLAN.scenario is None:
            return plain_target(self.runner.environment.parsed_options, t)
        if self.recorder is not None:
            self.recorder.observe(t)
        target = shapes.target_at(PLAN.stages, t)
        if target is None and self.recorder is not None:
            self.recorder.finish()
        return target


def plain_target(options: Any, run_time_s: float) -> tuple[int, float] | None:
    if options is None:
        return None
    if options.run_time and run_time_s >= options.run_time:
        return None
    return int(options.num_users or 1), float(options.spawn_rate or 1)


def _replan(environment: Any) -> None:
    global PLAN
    try:
        PLAN = RunPlan(environment.parsed_options)
    except ValueError as exc:
        log.error("chaoslab load: %s", exc)
        PLAN = None  # the shape then ends the run at once
        return
    _configure_users()


def _fail(environment: Any, message: str) -> None:
    log.error(message)
    environment.process_exit_code = 2
    if environment.runner is not None:
        environment.runner.quit()
    sys.exit(2)


@events.init.add_listener
def on_init(environment: Any, **_: Any) -> None:
    global PLAN
    options = environment.parsed_options
    if options is None:  # Locust used as a library: nothing to configure
        return
    try:
        PLAN = RunPlan(options)
    except ValueError as exc:
        _fail(environment, f"chaoslab load: {exc}")
        return
    _configure_users()
    if isinstance(environment.runner, WorkerRunner):
        return  # the master decides which users run and serves the metrics
    # Only the master's dispatcher picks classes; workers keep all of them so any class it sends exists there.
    if PLAN.mix == scenarios.MIX_CUSTOM:
        try:
            environment.user_classes[:] = custom_user_classes(environment.user_classes, PLAN.custom_users)
        except ValueError as exc:
            _fail(environment, f"chaoslab load: {exc}")
            return
    else:
        environment.user_classes[:] = MIX_CLASSES[PLAN.mix]
    if PLAN.scenario is not None and PLAN.scenario.every_journey and PLAN.mix == scenarios.MIX_SHOP:
        AdminUser.fixed_count = 1  # a 3-user smoke run still exercises the admin journey
    exporter.start(environment, options.metrics_host, options.metrics_port, _run_labels)


def custom_user_classes(found: list[type], wanted: list[str]) -> list[type]:
    """The user classes of a user's own locustfile: every class Locust found that is not chaoslab's own journeys
    (`wanted` names pick some of them). ValueError when there are none or a wanted one is missing."""
    theirs = {c.__name__: c for c in found if not c.__module__.startswith("loadtests")}
    if not theirs:
        raise ValueError("your locustfile defines no User class (subclass locust.HttpUser)")
    missing = [name for name in wanted if name not in theirs]
    if missing:
        raise ValueError(f"no user class {', '.join(missing)} in your locustfile (it has: {', '.join(theirs)})")
    return [theirs[name] for name in wanted] if wanted else list(theirs.values())


def _run_labels() -> tuple[str, str]:
    """locust_run_info's labels: the scenario and mix of the run going on (the web UI can change them)."""
    if PLAN is None:
        return "", ""
    return (PLAN.scenario.name if PLAN.scenario else "", PLAN.mix)


def _configure_users() -> None:
    """Class settings every node needs before it starts users: the rate's pacing, the smoke's tour."""
    if PLAN is None:
        return
    if PLAN.params is not None and PLAN.params.rate:
        RateShopper.iterations_per_s = shapes.per_user_throughput(PLAN.params.rate, PLAN.params.users)
    ShopperUser.tour_first = bool(PLAN.scenario and PLAN.scenario.every_journey)


@events.test_start.add_listener
def on_test_start(environment: Any, **_: Any) -> None:
    # Workers receive the master's custom options with the spawn message: resolve the plan again from them.
    global PLAN, WORKERS
    if isinstance(environment.runner, MasterRunner):
        WORKERS = max(WORKERS, environment.runner.worker_count)  # they are gone by the time the run quits
    if isinstance(environment.runner, WorkerRunner) and environment.parsed_options is not None:
        try:
            PLAN = RunPlan(environment.parsed_options)
        except ValueError as exc:
            log.error("chaoslab load: %s", exc)
            return
        _configure_users()


@events.quitting.add_listener
def on_quitting(environment: Any, **_: Any) -> None:
    """Summarize, judge against the thresholds, set the exit code, and write the summary file."""
    runner = environment.runner
    if runner is None or isinstance(runner, WorkerRunner) or PLAN is None:
        return
    shape = environment.shape_class
    if isinstance(shape, ScenarioShape) and shape.recorder is not None:
        shape.recorder.finish()
    summary = summarize(runner.stats)
    result: dict[str, Any] = {
        **PLAN.to_json(),
        "host": environment.host,
        "finished_at": time.time(),
        "workers": WORKERS or None,
        **summary,
        "steps": shape.recorder.steps if isinstance(shape, ScenarioShape) and shape.recorder else [],
    }
    if PLAN.thresholds is not None:
        judged = summary
        if PLAN.scenario is not None and PLAN.scenario.judge_steady and result["steps"]:
            judged = result["steps"][-1]
            result["judged_on"] = f"the steady part: {judged['label']}, the last {judged['seconds']:.0f} s"
        verdict = evaluate(PLAN.thresholds, judged)
        result["checks"] = [c.to_json() for c in verdict.checks]
        result["passed"] = verdict.passed
        for check in verdict.failed:
            log.error("threshold violated: %s %s, observed %s", check.what, check.limit, check.observed)
        environment.process_exit_code = 0 if verdict.passed else 1
    path = environment.parsed_options.summary_file if environment.parsed_options else ""
    if path:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        tmp = f"{path}.tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=2)
        os.replace(tmp, path)
