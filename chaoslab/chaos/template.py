"""`chaoslab chaos new NAME --fault KIND --target SERVICE`: a commented experiment to start from.

Each fault kind is one action of the extension, the action that undoes it, and what the experiment then waits
for. The experiment it writes is complete and valid as written (a test runs `chaos validate` and chaoslab's own
checks on every kind): a steady state (the lab ready, the gateway's error ratio under budget), the fault, a hold,
its undoing, the recovery measured, and restore_lab as the rollback of last resort. Numbers a user tunes are
configuration keys, so `--var` and gameday plans can change them without editing the file.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from typing import Any

import yaml

from chaoslab.lab.ports import SERVICES

ACTIONS = "chaoslab.chaos.actions"
PROBES = "chaoslab.chaos.probes"


@dataclass(frozen=True)
class Fault:
    action: str  # in chaoslab.chaos.actions
    what: str  # one line for the description
    arguments: dict[str, Any]  # the action's arguments; "{target}" is replaced, "${...}" are configuration keys
    undo: tuple[str, dict[str, Any]] | None  # the action that ends the fault in the method (None: it ends itself)
    settings: dict[str, Any] = field(default_factory=dict)  # configuration keys the arguments use
    isolated: bool = False  # a fault below the application: needs `chaoslab up --network isolated`
    service_target: bool = True  # False: the target is the broker, not a service
    # The alert (on the target service, or the broker) that must fire for this fault: `chaoslab coverage` and a
    # plan's coverage block fail when it does not (None: no alert is owed, the matrix only records what fired)
    must_detect: str | None = None

    def target_word(self, target: str) -> str:
        return target if self.service_target else "the broker"


FAULTS: dict[str, Fault] = {
    "kill": Fault("kill_replica", "SIGKILL one replica; supervisord starts it again",
                  {"service": "{target}"}, None),
    "stop": Fault("stop_service", "stop every replica of the service (an outage)",
                  {"service": "{target}"}, ("start_service", {"service": "{target}"}), must_detect="ServiceDown"),
    "pause": Fault("pause_replica", "SIGSTOP one replica: it holds its connections and answers nothing",
                   {"service": "{target}"}, ("resume_replicas", {"service": "{target}"})),
    "latency": Fault("inject_latency", "the service's answers are delayed",
                     {"service": "{target}", "latency_ms": "${latency_ms}", "ttl_s": "${fault_ttl_s}"},
                     ("clear_faults", {"service": "{target}"}), {"latency_ms": 500}),
    "errors": Fault("inject_errors", "the service answers a share of requests with an error status",
                    {"service": "{target}", "status": 503, "percent": "${error_percent}",
                     "ttl_s": "${fault_ttl_s}"},
                    ("clear_faults", {"service": "{target}"}), {"error_percent": 50},
                    must_detect="AvailabilityBurnRateFast"),
    "cpu": Fault("inject_cpu_burn", "a thread burns the replica's CPU",
                 {"service": "{target}", "percent": 100, "ttl_s": "${fault_ttl_s}"},
                 ("clear_faults", {"service": "{target}"})),
    "broker": Fault("stop_broker", "stop the lab's RabbitMQ node", {}, ("start_broker", {}),
                    service_target=False, must_detect="BrokerDown"),
    "blackhole": Fault("blackhole", "packets to the service are dropped: connections hang",
                       {"target": "{target}", "ttl_s": "${fault_ttl_s}"}, ("end_kernel_faults", {}), isolated=True),
    "loss": Fault("lose_packets", "a share of the service's packets is lost",
                  {"target": "{target}", "percent": "${loss_percent}", "ttl_s": "${fault_ttl_s}"},
                  ("end_kernel_faults", {}), {"loss_percent": 30}, isolated=True),
    "delay": Fault("delay_packets", "packets to the service are delayed in the kernel",
                   {"target": "{target}", "delay_ms": "${delay_ms}", "ttl_s": "${fault_ttl_s}"},
                   ("end_kernel_faults", {}), {"delay_ms": 200}, isolated=True),
    "bandwidth": Fault("limit_bandwidth", "the service's link is capped",
                       {"target": "{target}", "rate_kbit": "${rate_kbit}", "ttl_s": "${fault_ttl_s}"},
                       ("end_kernel_faults", {}), {"rate_kbit": 256}, isolated=True),
    "partition": Fault("partition", "the service cannot reach, nor be reached by, any other host of the lab",
                       {"target": "{target}", "ttl_s": "${fault_ttl_s}"}, ("end_kernel_faults", {}), isolated=True),
    "memory": Fault("limit_memory", "the replica's memory is capped and filled until the kernel OOM-kills it",
                    {"service": "{target}", "ttl_s": "${fault_ttl_s}"}, ("end_kernel_faults", {}), isolated=True),
    "cpu-throttle": Fault("throttle_cpu", "the service gets a share of one CPU (CFS quota)",
                          {"service": "{target}", "percent": "${cpu_percent}", "ttl_s": "${fault_ttl_s}"},
                          ("end_kernel_faults", {}), {"cpu_percent": 20}, isolated=True),
    "disk": Fault("fill_disk", "the service's own disk fills until writes fail (ENOSPC)",
                  {"service": "{target}", "ttl_s": "${fault_ttl_s}"}, ("end_kernel_faults", {}), isolated=True),
    "clock": Fault("skew_clock", "the service's clock jumps ahead",
                   {"service": "{target}", "offset_s": "${offset_s}", "ttl_s": "${fault_ttl_s}"},
                   ("end_kernel_faults", {}), {"offset_s": 600}, isolated=True),
}

COMMON_SETTINGS = {"fault_s": 20, "fault_ttl_s": 120, "recover_within_s": 60, "window": "10s",
                   "max_error_ratio": 0.05}


def fault_targets(fault_kinds: list[str] | None, services: list[str] | None,
                  isolated: bool) -> list[tuple[str, str]]:
    """Every (fault kind, target) pair of a detection matrix: the kinds given (default: every in-service kind, and
    below the application in an isolated lab) against every service given (default: all) they apply to, or the
    broker. ValueError for an unknown fault kind or service, or a kernel fault asked of a lab that is not isolated.
    """
    kinds = fault_kinds or [k for k in FAULTS if isolated or not FAULTS[k].isolated]
    for kind in kinds:
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; one of: {', '.join(FAULTS)}")
        if FAULTS[kind].isolated and not isolated:
            raise ValueError(f"{kind} acts below the application: it needs an isolated lab")
    targets = services or list(SERVICES)
    for service in targets:
        if service not in SERVICES:
            raise ValueError(f"unknown service {service!r}; one of: {', '.join(SERVICES)}")
    return [(kind, target) for kind in kinds for target in (targets if FAULTS[kind].service_target else ["broker"])]


def _fill(value: Any, target: str) -> Any:
    if isinstance(value, str):
        return value.replace("{target}", target)
    if isinstance(value, dict):
        return {k: _fill(v, target) for k, v in value.items()}
    return value


def _activity(kind: str, name: str, module: str, func: str, arguments: dict[str, Any],
              **extra: Any) -> dict[str, Any]:
    return {"type": kind, "name": name,
            "provider": {"type": "python", "module": module, "func": func, "arguments": arguments}, **extra}


def experiment(name: str, fault: str, target: str) -> dict[str, Any]:
    """The experiment `chaos new` writes, as data. ValueError for an unknown fault or target."""
    if fault not in FAULTS:
        raise ValueError(f"unknown fault {fault!r}; one of: {', '.join(FAULTS)}")
    spec = FAULTS[fault]
    if spec.service_target and target not in SERVICES:
        raise ValueError(f"unknown target {target!r}; one of: {', '.join(SERVICES)}")
    who = spec.target_word(target)
    configuration: dict[str, Any] = {
        "chaoslab_state_dir": {"type": "env", "key": "CHAOSLAB_STATE_DIR", "default": ".chaoslab"},
        **COMMON_SETTINGS, **spec.settings,
    }
    method = [_activity("action", f"{fault}-{target}", ACTIONS, spec.action, _fill(spec.arguments, target)),
              _activity("action", "let-it-act", ACTIONS, "hold", {"seconds": "${fault_s}"})]
    if spec.undo is not None:
        func, arguments = spec.undo
        method.append(_activity("action", f"end-{fault}", ACTIONS, func, _fill(arguments, target)))
    if spec.service_target:
        method.append(_activity("probe", f"{target}-recovers", PROBES, "time_to_recover",
                                {"service": target, "timeout_s": "${recover_within_s}"}))
    method.append(_activity("probe", "clients-errors-back-under-budget", PROBES, "wait_for_error_ratio",
                            {"service": "gateway", "max_ratio": "${max_error_ratio}", "window": "${window}",
                             "timeout_s": "${recover_within_s}"}))
    tags = ["chaoslab", fault] + ([target] if spec.service_target else []) + (["isolated"] if spec.isolated else [])
    return {
        "version": "1.0.0",
        "title": f"{name}: {who} survives {fault}",
        "description": f"{spec.what.capitalize()} ({who}) for ${{fault_s}} s; the shop recovers within "
                       f"${{recover_within_s}} s and clients' errors return under budget.",
        "tags": tags,
        "configuration": configuration,
        "steady-state-hypothesis": {
            "title": "every replica ready, clients' errors under budget",
            "probes": [
                _activity("probe", "lab-ready", PROBES, "lab_ready", {}, tolerance=True),
                # a literal range: Chaos Toolkit does not substitute configuration into tolerances
                _activity("probe", "gateway-errors-under-budget", PROBES, "error_ratio",
                          {"service": "gateway", "window": "${window}"},
                          tolerance={"type": "range", "range": [0.0, COMMON_SETTINGS["max_error_ratio"]]}),
            ],
        },
        "method": method,
        "rollbacks": [_activity("action", "restore-the-lab", ACTIONS, "restore_lab", {})],
    }


USAGE = """\
Tune it: every number is a configuration key below (the hypothesis' error range is written out: Chaos Toolkit
does not substitute configuration into tolerances); override one for a run with
  chaoslab chaos run {file} --var fault_s=30
Check it, then run it under load:
  chaoslab chaos validate {file}
  chaoslab chaos run {file} --load orders
Every action and probe, with its arguments, defaults and an example: docs/extension.md"""


def _comment(text: str) -> str:
    return "\n".join(f"# {line}".rstrip() for line in text.splitlines()) + "\n"


def render(name: str, fault: str, target: str, file: str) -> str:
    """The experiment as YAML, with comments saying what it does and how to tune, check and run it."""
    data = experiment(name, fault, target)
    spec = FAULTS[fault]
    undo = f"ends it ({spec.undo[0]}), " if spec.undo else ""
    what = (f"What it does: {spec.what}. The steady-state hypothesis is checked before and after the method; the "
            f"method injects the fault ({spec.action}), lets it act for fault_s seconds, {undo}measures how long the "
            "shop takes to recover, and waits until clients' errors are back under budget. restore_lab, the "
            "rollback, undoes any fault of the catalogue, even when the run is interrupted.")
    if spec.isolated:
        what += (" This fault acts below the application: it needs an isolated lab (as root: chaoslab up "
                 "--network isolated).")
    head = (_comment(f"{name}: written by `chaoslab chaos new {name} --fault {fault} --target {target}`.") + "#\n"
            + _comment(textwrap.fill(what, 110)) + "#\n" + _comment(USAGE.format(file=file)) + "\n")
    return head + yaml.safe_dump(data, sort_keys=False, width=110)
