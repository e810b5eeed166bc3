"""`chaoslab topologies compare`: the shop as microservices and as a modular monolith, each on a lab of its own,
one after the other on this machine, the same scenarios with the same settings, and one side-by-side result.

Per topology (N replicas of every service, or N monolith replicas; mutual TLS off on both, as the monolith runs;
the rate limiter off, so that the shop and not the limiter is measured):
- start: `up` to every replica ready; processes, listening ports and memory (PSS) of the shop's processes;
- orders at a fixed rate (open loop): p50 and p99; at saturation (closed loop): throughput and CPU per order;
- blast radius of three faults on payments, each under the journeys at a fixed rate: stopped for a while (a process
  fault on the module, which in the monolith stops the processes holding it), one replica killed (SIGKILL;
  supervisord restarts it), and every call answered with an error (a fault inside the module, through its admin
  API): per journey the share of requests failed and for how long;
- a rolling restart of payments, one replica (program) after the other, under the journeys: client errors and its
  length, the stand-in for an independent deployment;
- the cost of scaling when payments is the bottleneck: the provider slowed (PROVIDER_LATENCY_MS and
  PROVIDER_CONCURRENCY), saturation throughput at N, then `scale payments=N+1` (one payments process, or one whole
  monolith process) and again: throughput gained, memory added, and from these increments the replicas and the
  memory a target rate needs (a projection from the two measured points, marked as such);
- what a user operates: processes, ports, alert rules, dashboards;
- with a plan (`--plan`): the plan's gameday on the lab (before the scaling scenario slows payments), its verdict
  counts and resilience score, and the experiments it left out as not applying to the topology.
Every figure is reported for both with the ratio monolith / microservices.
"""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from chaoslab.clients.admin import AdminClient, fault_body
from chaoslab.lab import control, faults
from chaoslab.lab.paths import repo_root
from chaoslab.lab.ports import find_free_base
from chaoslab.lab.probes import http_ok
from chaoslab.lab.spec import MICROSERVICES, MONOLITH, TOPOLOGIES, load_spec
from chaoslab.lab.supervisor import Supervisor
from chaoslab.observability.alerts import alert_names
from chaoslab.topologies import measure
from services import contract

# The provider slowed for the scaling scenario: 2 charges at a time, 250 ms each, 8 charges/s per replica (the
# scale-test's setting): payments is then the bottleneck on this machine.
SLOW_PROVIDER = {"PROVIDER_LATENCY_MS": "250", "PROVIDER_JITTER_MS": "0", "PROVIDER_CONCURRENCY": "2"}
SETTLE_S = 2.0
# Figures compared (a path into one topology's result, what it is, which way is better).
FIGURES: tuple[tuple[str, str, str], ...] = (
    ("start.up_s", "start: up to every replica ready (s)", "lower"),
    ("start.processes", "processes of the shop", "lower"),
    ("start.ports", "listening ports of the shop", "lower"),
    ("start.pss_mb", "memory of the shop, PSS (MB)", "lower"),
    ("fixed_rate.p50_ms", "p50 of an order at a fixed rate (ms)", "lower"),
    ("fixed_rate.p99_ms", "p99 of an order at a fixed rate (ms)", "lower"),
    ("saturation.throughput_rps", "orders/s at saturation", "higher"),
    ("saturation.cpu_ms_per_order", "CPU per order at saturation (ms)", "lower"),
    ("blast_radius.stop.failed_share", "payments stopped: share of all requests failed", "lower"),
    ("blast_radius.stop.journeys_failed_count", "payments stopped: journeys that failed", "lower"),
    ("blast_radius.kill.failed_share", "a payments replica killed: share of all requests failed", "lower"),
    ("blast_radius.kill.journeys_failed_count", "a payments replica killed: journeys that failed", "lower"),
    ("blast_radius.errors.failed_share", "payments answering errors: share of all requests failed", "lower"),
    ("blast_radius.errors.journeys_failed_count", "payments answering errors: journeys that failed", "lower"),
    ("rolling_restart.failed_share", "rolling restart of payments: share of requests failed", "lower"),
    ("rolling_restart.duration_s", "rolling restart of payments: length (s)", "lower"),
    ("scaling.throughput_gain_rps", "payments the bottleneck, one replica more: orders/s gained", "higher"),
    ("scaling.memory_added_mb", "payments the bottleneck, one replica more: memory added (MB)", "lower"),
    ("scaling.mb_per_rps_gained", "payments the bottleneck: memory per order/s gained (MB)", "lower"),
    ("scaling.replicas_for_target", "payments the bottleneck: replicas for the target rate", "lower"),
    ("scaling.memory_for_target_mb", "payments the bottleneck: memory of the shop at the target rate (MB)", "lower"),
    ("operate.alert_rules", "alert rules to operate", "lower"),
    ("operate.dashboards", "dashboards to operate", "lower"),
)
# With --plan: the gameday's figures (not measured without a plan).
PLAN_FIGURES: tuple[tuple[str, str, str], ...] = (
    ("gameday.counts.passed", "the plan's gameday: verdicts passed", "higher"),
    ("gameday.counts.failed", "the plan's gameday: verdicts failed", "lower"),
    ("gameday.counts.inconclusive", "the plan's gameday: verdicts inconclusive", "lower"),
    ("gameday.score", "the plan's gameday: resilience score", "higher"),
)

Progress = Callable[[str], None]


def _shop_processes(state_dir: Path) -> list[psutil.Process]:
    """The shop's processes (every replica's program, each once), from the lab's supervisord."""
    spec = load_spec(state_dir)
    info = {p["name"]: p for p in Supervisor(spec.paths).processes()}
    procs = []
    for name in spec.program_names():
        pid = int(info.get(name, {}).get("pid") or 0)
        if pid:
            procs.append(psutil.Process(pid))
    return procs


def _payments_programs(state_dir: Path) -> list[str]:
    spec = load_spec(state_dir)
    return spec.program_names([contract.PAYMENTS.name])


def _restart(state_dir: Path, program: str, timeout_s: float = 60.0) -> None:
    """Stop a program gracefully, start it, and wait until every replica it holds is ready again."""
    spec = load_spec(state_dir)
    sv = Supervisor(spec.paths)
    faults.stop_programs(sv, [program])
    faults.start_programs(sv, [program])
    urls = [f"{spec.url(spec.ports.admin_port(s, n))}/health/ready"
            for s in contract.SERVICE_NAMES for n, name in enumerate(spec.replica_names(s), start=1)
            if spec.program_of(name) == program]
    faults.wait_until(lambda: all(http_ok(u, timeout_s=1.0) for u in urls), timeout_s, f"{program} ready")


def _measure_one(topology: str, state_dir: Path, replicas: int, settings: dict[str, Any],
                 progress: Progress) -> dict[str, Any]:
    rate, seconds, clients = settings["rate"], settings["seconds"], settings["clients"]
    fault_s = settings["fault_s"]
    base = find_free_base(26000, 29000, replicas=dict.fromkeys(contract.SERVICE_NAMES, replicas + 1))
    progress(f"{topology}: starting a lab of {replicas} replica(s) on base port {base}")
    started = time.monotonic()
    registry = control.up(state_dir, base, dict.fromkeys(contract.SERVICE_NAMES, replicas), tls=False,
                          topology=topology, env={"*": {"RATE_LIMIT_RPS": "0"}})
    up_s = time.monotonic() - started
    result: dict[str, Any] = {"topology": topology, "replicas": replicas, "base_port": base}
    try:
        url = registry["gateway_url"]
        time.sleep(SETTLE_S)
        procs = _shop_processes(state_dir)
        result["start"] = {"up_s": round(up_s, 2), "processes": len(procs),
                           "ports": len(measure.listening_ports(procs)), "pss_mb": measure.pss_mb(procs)}
        tokens = asyncio.run(measure.sign_up(url, clients))

        progress(f"{topology}: orders at {rate:g}/s for {seconds:g} s")
        tally = measure.Tally()
        result["fixed_rate"] = {**asyncio.run(measure.open_loop(url, tokens, rate, seconds, tally)),
                                **tally.summary()}
        progress(f"{topology}: orders at saturation, {clients} clients for {seconds:g} s")
        tally = measure.Tally()
        saturation = asyncio.run(measure.closed_loop(url, tokens, seconds, 2.0, tally, procs))
        saturation.pop("_cpu_before", None)
        saturation.pop("broker_cpu_ms_per_order", None)  # the broker is not measured here (shared by both)
        result["saturation"] = {**saturation, **tally.summary()}

        payments = _payments_programs(state_dir)
        result["blast_radius"] = {}
        for fault in BLAST_FAULTS:
            progress(f"{topology}: blast radius of payments {BLAST_FAULTS[fault]} ({fault_s:g} s) under the journeys")
            result["blast_radius"][fault] = _blast(state_dir, registry, url, tokens, rate, fault_s, fault)
            faults.wait_until(lambda: all(http_ok(f"{r['admin_url']}/health/ready")
                                          for s in registry["services"].values() for r in s["replicas"]),
                              60, "every replica ready after the fault")

        progress(f"{topology}: rolling restart of payments ({', '.join(payments)})")
        timing: dict[str, float] = {}

        def rolling() -> None:
            timing["start"] = time.monotonic()
            for program in payments:
                _restart(state_dir, program)
            timing["end"] = time.monotonic()

        restart_at = 1.0
        answers = asyncio.run(measure.journeys(url, tokens, rate, restart_at + settings["restart_window_s"],
                                               [(restart_at, rolling)]))
        duration = timing.get("end", time.monotonic()) - timing.get("start", time.monotonic())
        window = measure.blast_radius(answers, restart_at, restart_at + settings["restart_window_s"])
        result["rolling_restart"] = {"programs": payments, "duration_s": round(duration, 2),
                                     "failed_share": window["failed_share"],
                                     "journeys_failed": window["journeys_failed"],
                                     "per_journey": {j: window[j] for j in measure.JOURNEYS}}

        if settings.get("plan"):
            progress(f"{topology}: the gameday of plan {settings['plan']}")
            result["gameday"] = _gameday(state_dir, settings["plan"], state_dir.parent / "gameday")
        progress(f"{topology}: payments slowed to the bottleneck, then one replica more")
        result["scaling"] = _scaling(state_dir, url, tokens, replicas, seconds, settings["target_rps"])
        result["operate"] = {"processes": result["start"]["processes"], "ports": result["start"]["ports"],
                             "alert_rules": len(alert_names()),
                             "dashboards": len(list((repo_root() / "dashboards").glob("*.json")))}
    finally:
        progress(f"{topology}: stopping the lab")
        control.down(state_dir)
    return result


BLAST_FAULTS = {"stop": "stopped", "kill": "replica killed", "errors": "answering errors"}
FAULT_AT_S = 2.0  # the journeys run this long before the fault, and as long as it lasted (4 s at least) after it


def recovery_s(fault_s: float) -> float:
    return max(4.0, fault_s)


def _blast(state_dir: Path, registry: dict[str, Any], url: str, tokens: list[str], rate: float, fault_s: float,
           fault: str) -> dict[str, Any]:
    """The journeys at `rate` while payments suffers `fault`, from FAULT_AT_S before it to recovery_s after it."""
    sv = Supervisor(load_spec(state_dir).paths)
    programs = _payments_programs(state_dir)
    admin = AdminClient.of(registry)
    targets = registry["services"][contract.PAYMENTS.name]["replicas"]
    events: list[tuple[float, Callable[[], Any]]]
    if fault == "stop":  # every process holding payments, stopped gracefully, started again after fault_s
        events = [(FAULT_AT_S, lambda: faults.stop_programs(sv, programs)),
                  (FAULT_AT_S + fault_s, lambda: faults.start_programs(sv, programs))]
    elif fault == "kill":  # one of them SIGKILLed; supervisord restarts it (its own recovery, not fault_s)
        events = [(FAULT_AT_S, lambda: faults.signal(sv, programs[0], "KILL"))]
    else:  # payments' own fault: every call it serves answers 503 for fault_s (its TTL)
        events = [(FAULT_AT_S, lambda: admin.add_fault(targets, fault_body("error", status=503, ttl_s=fault_s)))]
    total = FAULT_AT_S + fault_s + recovery_s(fault_s)
    try:
        answers = asyncio.run(measure.journeys(url, tokens, rate, total, events))
    finally:
        if fault == "errors":
            admin.clear_faults(targets)
    blast = measure.blast_radius(answers, FAULT_AT_S, total)
    blast["journeys_failed_count"] = len(blast["journeys_failed"])
    blast["targets"] = programs if fault != "kill" else programs[:1]
    return blast


def _gameday(state_dir: Path, plan: str, runs_dir: Path) -> dict[str, Any]:
    """`chaoslab gameday --plan PLAN` on this lab (a process of its own, as a user runs it): its counts, score, notes
    and exit code from its summary.json."""
    done = subprocess.run([sys.executable, "-m", "chaoslab.cli", "gameday", "--plan", plan, "--state-dir",
                           str(state_dir), "--runs-dir", str(runs_dir)], capture_output=True, text=True,
                          cwd=repo_root(), check=False)
    summaries = sorted(runs_dir.glob("*/summary.json"))
    if not summaries:
        return {"exit_code": done.returncode, "error": (done.stderr or done.stdout)[-500:]}
    return {"exit_code": done.returncode, **gameday_figures(json.loads(summaries[-1].read_text())),
            "run_dir": str(summaries[-1].parent)}


def gameday_figures(summary: dict[str, Any]) -> dict[str, Any]:
    """What the comparison keeps of a gameday's summary.json: passed, the verdict counts, the resilience score
    (chaoslab/gameday/score.py), the notes (experiments left out)."""
    score = ((summary.get("resilience") or {}).get("score") or {}).get("value")
    return {"passed": summary["passed"], "counts": summary["counts"], "score": score,
            "notes": summary.get("notes", [])}


def _scaling(state_dir: Path, url: str, tokens: list[str], replicas: int, seconds: float,
             target_rps: float) -> dict[str, Any]:
    control.set_env(state_dir, [f"payments:{k}={v}" for k, v in SLOW_PROVIDER.items()])
    time.sleep(SETTLE_S)
    before_procs = _shop_processes(state_dir)
    before_mb = measure.pss_mb(before_procs)
    tally = measure.Tally()
    before = asyncio.run(measure.closed_loop(url, tokens, seconds, 2.0, tally, before_procs))
    control.scale(state_dir, [f"payments={replicas + 1}"])
    time.sleep(SETTLE_S)
    after_procs = _shop_processes(state_dir)
    after_mb = measure.pss_mb(after_procs)
    after = asyncio.run(measure.closed_loop(url, tokens, seconds, 2.0, tally, after_procs))
    gain = after["throughput_rps"] - before["throughput_rps"]
    added = round(after_mb - before_mb, 1)
    # projected from the measured increment: replicas (and memory) a target rate needs, one increment at a time
    more = max(0, math.ceil((target_rps - after["throughput_rps"]) / gain)) if gain > 0 else None
    return {"target_rps": target_rps,
            "replicas_for_target": replicas + 1 + more if more is not None else None,
            "memory_for_target_mb": round(after_mb + more * added, 1) if more is not None else None,
            "projected": "from the measured increment of one replica", "provider": SLOW_PROVIDER,
            "replicas_before": replicas, "replicas_after": replicas + 1,
            "processes_added": len(after_procs) - len(before_procs),
            "throughput_before_rps": before["throughput_rps"], "throughput_after_rps": after["throughput_rps"],
            "throughput_gain_rps": round(gain, 1), "pss_before_mb": before_mb, "pss_after_mb": after_mb,
            "memory_added_mb": added, "mb_per_rps_gained": round(added / gain, 2) if gain > 0 else None,
            **{k: v for k, v in tally.summary().items() if k in ("requests", "errors")}}


def _figure(result: dict[str, Any], path: str) -> float | None:
    value: Any = result
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return float(value) if isinstance(value, int | float) and not (isinstance(value, float) and math.isnan(value)) \
        else None


def side_by_side(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Each figure for both topologies and the ratio monolith / microservices."""
    rows = []
    planned = "gameday" in results[MICROSERVICES] or "gameday" in results[MONOLITH]
    for path, label, better in FIGURES + (PLAN_FIGURES if planned else ()):
        micro, mono = _figure(results[MICROSERVICES], path), _figure(results[MONOLITH], path)
        ratio = round(mono / micro, 3) if micro not in (None, 0) and mono is not None else None
        rows.append({"figure": path, "label": label, "better": better, MICROSERVICES: micro, MONOLITH: mono,
                     "ratio": ratio})
    return rows


def compare(run_dir: Path, *, replicas: int = 2, rate: float = 10.0, seconds: float = 10.0, clients: int = 12,
            fault_s: float = 8.0, target_rps: float = 40.0, plan: str | None = None,
            progress: Progress | None = None) -> dict[str, Any]:
    """Both topologies, one after the other; writes RUN/compare.json and returns it."""
    progress = progress or (lambda _: None)
    run_dir.mkdir(parents=True, exist_ok=True)
    # the journeys go on this long from the rolling restart's start (a restart of a replica takes 1-3 s here)
    settings = {"rate": rate, "seconds": seconds, "clients": clients, "fault_s": fault_s,
                "restart_window_s": seconds + 4.0 * replicas, "target_rps": target_rps, "plan": plan}
    results = {}
    for topology in TOPOLOGIES:
        results[topology] = _measure_one(topology, run_dir / topology / "state", replicas, settings, progress)
    machine = {"cpus": psutil.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30)}
    out = {"settings": {**settings, "replicas": replicas, "tls": "off", "rate_limit": "off", "machine": machine},
           "topologies": results, "figures": side_by_side(results), "run_dir": str(run_dir)}
    (run_dir / "compare.json").write_text(json.dumps(out, indent=2) + "\n")
    (run_dir / "compare.md").write_text(markdown(out))
    return out


def markdown(result: dict[str, Any]) -> str:
    """The side-by-side report as a Markdown table (RUN/compare.md), for a pull request or a doc."""
    def cell(value: float | None) -> str:
        return "-" if value is None else f"{value:g}"

    settings = result["settings"]
    lines = [f"# microservices and modular monolith, {settings['replicas']} replica(s) each", "",
             f"Settings: {json.dumps({k: v for k, v in settings.items() if k != 'machine'})}; machine: "
             f"{settings['machine']['cpus']} CPUs, {settings['machine']['memory_gb']} GB.", "",
             "| figure | microservices | monolith | monolith / micro |", "| --- | ---: | ---: | ---: |"]
    lines += [f"| {r['label']} | {cell(r[MICROSERVICES])} | {cell(r[MONOLITH])} | {cell(r['ratio'])} |"
              for r in result["figures"]]
    lines.append("")
    for topology, res in result["topologies"].items():
        for note in (res.get("gameday") or {}).get("notes", []):
            lines.append(f"- {topology}, the plan's gameday: {note}")
        for fault, blast in res["blast_radius"].items():
            failed = ", ".join(f"{j} ({blast[j]['failed_share']:.0%}, {blast[j]['failing_s']} s)"
                               for j in blast["journeys_failed"]) or "none"
            lines.append(f"- {topology}, payments {BLAST_FAULTS[fault]}: journeys failed: {failed}")
    return "\n".join(lines) + "\n"
