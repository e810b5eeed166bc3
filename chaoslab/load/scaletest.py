"""`chaoslab scale-test SERVICE`: does a service's throughput grow with its replicas?

For each replica count: scale the service (the lab's own scale operation), run the step scenario with journeys
that only take the service's saturating path, and read the plateau of the throughput curve from the per-step
windows of the run. Efficiency(N) = throughput(N) / (N x throughput(1)); 1.0 is perfectly linear.

Only an I/O-bound service can show this on a 2-core machine: payments is one by design (a simulated provider
with a latency and a concurrency limit per replica, capacity = PROVIDER_CONCURRENCY / PROVIDER_LATENCY_MS per
replica). Its capacity must stay well below what the rest of the shop and Locust can do on the same 2 cores,
or the curve measures the machine, not payments. Measured: one order costs the shop about 33 ms of CPU in all
(orders 14, payments 6, notifications 4, users 4, gateway 2.5, RabbitMQ 1.3), so 2 cores top out near 55
orders/s before Locust and Prometheus take their share: the default provider (8 / 50 ms = 160/s per replica)
or even 4 / 200 ms (20/s, 60/s with 3) would measure the machine. Hence PROVIDER_LATENCY_MS=250 and
PROVIDER_CONCURRENCY=2 for this check: 8 charges/s per replica, 24/s with 3, about 0.8 of a core for the shop,
which leaves room for Locust, Prometheus and a machine that is busy with something else (measured: at 30/s with
3 replicas a busy machine already capped the curve at 26).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from chaoslab.clients.admin import metrics_text
from chaoslab.errors import USAGE, ClientError, LoadError
from chaoslab.lab import control
from chaoslab.lab.paths import DEFAULT_RUNS_DIR, new_run_dir
from chaoslab.lab.spec import load_spec
from chaoslab.load import runner
from chaoslab.load.progress import LiveView
from chaoslab.load.target import Target, resolve, running_lab

SCALING_ENV = {"PROVIDER_LATENCY_MS": "250", "PROVIDER_CONCURRENCY": "2"}
MAX_SENSIBLE_CAPACITY = 30.0  # orders/s the 2-core lab and Locust sustain with room to spare (~33 ms CPU/order)
PLATEAU = 0.9  # steps within 10% of the best step are on the plateau
SETTLE_AFTER_SCALE_S = 6.0  # orders' gRPC channels reconnect and spread over the new replicas
USERS_PER_SLOT = 4.0  # peak users per provider slot: a queue at every replica even when the rest of the
# chain is slow (a busy machine adds hundreds of ms outside payments), so every provider slot stays busy


@dataclass(frozen=True)
class SaturatingPath:
    mix: str
    method: str
    name: str


# The path whose throughput a service's replicas bound, and the journey mix that takes only that path.
PATHS = {"payments": SaturatingPath("orders", "POST", "/api/orders")}


@dataclass(frozen=True)
class ScaleRequest:
    service: str
    replicas: list[int]
    scenario: str
    duration_s: float
    users_per_replica: int | None
    min_efficiency: float
    state_dir: Path
    run_dir: Path | None  # None: runs/<time>-scale-<service>, made once the lab and the service check out
    provider_env: dict[str, str] | None = None  # payments' provider for the test; None keeps what runs


def parse_replicas(text: str) -> list[int]:
    try:
        counts = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"bad --replicas {text!r}: expected counts like 1,2,3") from None
    if not counts or any(n < 1 for n in counts) or len(set(counts)) != len(counts):
        raise ValueError(f"bad --replicas {text!r}: distinct counts of at least 1, like 1,2,3")
    if 1 not in counts:
        raise ValueError(f"bad --replicas {text!r}: include 1, the baseline efficiency is measured against")
    return sorted(counts)


# --- reading a run --------------------------------------------------------------------------------------------

def _entry(window: dict[str, Any], path: SaturatingPath) -> dict[str, Any]:
    for row in window.get("entries", []):
        if row["method"] == path.method and row["name"] == path.name:
            return row
    return {"requests": 0, "failures": 0, "ok_rps": 0.0, "rps": 0.0, "p50_ms": 0.0, "p95_ms": 0.0, "p99_ms": 0.0}


def saturation(steps: list[dict[str, Any]], path: SaturatingPath) -> dict[str, Any]:
    """The plateau of a step run: mean successful throughput of the steps within 10% of the best one, and the
    latency at the knee (the first plateau step: saturated, with the least queueing). `saturated` says whether
    the curve flattened at all: the last step did not add 10% over the best step before it. (Against the best, not
    the step just before: one step stalled by a busy machine, 15.8 between 23.5 and 23.8 charges/s in a CI run,
    made a flat curve look as if it still climbed.)"""
    rows = [(s, _entry(s, path)) for s in steps]
    if not rows:
        raise LoadError("the run recorded no steps", exit_code=3)
    best = max(r["ok_rps"] for _, r in rows)
    plateau = [(s, r) for s, r in rows if r["ok_rps"] >= PLATEAU * best]
    knee_step, knee = plateau[0]
    requests = sum(r["requests"] for _, r in rows)
    failures = sum(r["failures"] for _, r in rows)
    last = rows[-1][1]["ok_rps"]
    before = max((r["ok_rps"] for _, r in rows[:-1]), default=0.0)
    return {
        "throughput": round(sum(r["ok_rps"] for _, r in plateau) / len(plateau), 2),
        "best_step": round(best, 2),
        "plateau_steps": [s["label"] for s, _ in plateau],
        "knee_users": knee_step.get("users_running", knee_step["users"]),
        "p50_ms": knee["p50_ms"], "p95_ms": knee["p95_ms"], "p99_ms": knee["p99_ms"],
        "error_ratio": round(failures / requests, 4) if requests else 0.0,
        "saturated": len(rows) > 1 and last < before * 1.1,
        "curve": [{"users": s.get("users_running", s["users"]), "ok_rps": r["ok_rps"], "p95_ms": r["p95_ms"]}
                  for s, r in rows],
    }


def efficiencies(points: list[dict[str, Any]]) -> None:
    """Adds `efficiency` = throughput(N) / (N x throughput(1)) and `speedup` to each point, in place."""
    base = next(p["throughput"] for p in points if p["replicas"] == 1)
    for p in points:
        p["speedup"] = round(p["throughput"] / base, 3) if base else 0.0
        p["efficiency"] = round(p["throughput"] / (p["replicas"] * base), 3) if base else 0.0


# --- the service under test ----------------------------------------------------------------------------------

def _environ(pid: int) -> dict[str, str]:
    """A replica's environment (Linux /proc): the provider settings it really runs with."""
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}


def payments_capacity(registry: dict[str, Any]) -> dict[str, Any]:
    """Charges/s one payments replica can take: PROVIDER_CONCURRENCY / PROVIDER_LATENCY_MS of a running replica."""
    replicas = registry["services"]["payments"]["replicas"]
    env = _environ(int(replicas[0]["pid"])) if replicas and replicas[0].get("pid") else {}
    latency_ms = float(env.get("PROVIDER_LATENCY_MS", 50))
    concurrency = int(env.get("PROVIDER_CONCURRENCY", 8))
    return {"provider_latency_ms": latency_ms, "provider_concurrency": concurrency,
            "per_replica": round(concurrency / (latency_ms / 1000.0), 2), "read_from_replica": bool(env)}


def processed_by_replica(registry: dict[str, Any], service: str) -> dict[str, float]:
    """payments_processed_total{outcome="charged"} per replica from their admin ports: how the load spread."""
    counts: dict[str, float] = {}
    for replica in registry["services"][service]["replicas"]:
        try:
            text = metrics_text(replica, timeout_s=3)
        except ClientError:
            continue
        total = 0.0
        for line in text.splitlines():
            if line.startswith("payments_processed_total{") and 'outcome="charged"' in line:
                total += float(line.rsplit(" ", 1)[1])
        counts[replica["name"]] = total
    return counts


# --- the test ------------------------------------------------------------------------------------------------

def run(req: ScaleRequest, out: Console, err: Console) -> dict[str, Any]:
    path = PATHS.get(req.service)
    if path is None:
        raise LoadError(
            f"scale-test measures {', '.join(PATHS)}, not {req.service!r}",
            hint="the other services are CPU-bound: on a 2-core machine their replicas share the same two cores, "
                 "so only an I/O-bound service (payments' simulated provider) can show scaling here",
            exit_code=USAGE)
    target = resolve(req.state_dir, None)
    registry = target.registry
    assert registry is not None
    req = replace(req, run_dir=req.run_dir or new_run_dir(DEFAULT_RUNS_DIR, "scale", req.service))
    original = len(registry["services"][req.service]["replicas"])
    restore_env = _apply_provider(req, out)
    try:
        return _measure(req, path, target, original, out, err)
    finally:
        if restore_env:
            out.print(f"[cyan]•[/] restoring {req.service}' environment: {' '.join(restore_env)}", highlight=False)
            control.set_env(req.state_dir, restore_env)


def _apply_provider(req: ScaleRequest, out: Console) -> list[str]:
    """Set the provider's latency and concurrency for the test (the lab restarts payments' replicas);
    the overrides that undo it afterwards."""
    if not req.provider_env:
        return []
    current = load_spec(req.state_dir).env.get(req.service, {})
    if all(current.get(k) == v for k, v in req.provider_env.items()):
        return []
    items = [f"{req.service}:{k}={v}" for k, v in req.provider_env.items()]
    out.print(f"[cyan]•[/] slowing the simulated provider for the test: {' '.join(items)} "
              f"(the lab restarts {req.service}' replicas)", highlight=False)
    control.set_env(req.state_dir, items)
    return [f"{req.service}:{k}={current.get(k, '')}" for k in req.provider_env]


def _measure(req: ScaleRequest, path: SaturatingPath, target: Target, original: int, out: Console,
             err: Console) -> dict[str, Any]:
    assert req.run_dir is not None  # run() made it
    registry = running_lab(req.state_dir) or {}
    capacity = payments_capacity(registry)
    per_slot_users = req.users_per_replica or math.ceil(USERS_PER_SLOT * capacity["provider_concurrency"])
    _explain(out, req, capacity, per_slot_users)
    points: list[dict[str, Any]] = []
    try:
        for count in req.replicas:
            out.print(f"[cyan]•[/] scaling {req.service} to {count}", highlight=False)
            scaled = control.scale(req.state_dir, [f"{req.service}={count}"])
            time.sleep(SETTLE_AFTER_SCALE_S)
            before = processed_by_replica(scaled.registry, req.service)
            users = per_slot_users * count
            load = runner.LoadRequest(scenario=req.scenario, target=target, run_dir=req.run_dir / f"replicas-{count}",
                                      users=users, duration_s=req.duration_s, mix=path.mix)
            with LiveView(err, f"{req.service}={count}", req.duration_s,
                          f"http://127.0.0.1:{target.metrics_port}/metrics") as view:
                outcome = runner.run(load, req.duration_s, on_tick=view.tick)
            if outcome.summary is None:
                raise LoadError("interrupted", exit_code=130)
            after = processed_by_replica(scaled.registry, req.service)
            point = {"replicas": count, "users": users, **saturation(outcome.summary.get("steps", []), path),
                     "charged_by_replica": {k: after.get(k, 0) - before.get(k, 0) for k in after},
                     "run_dir": str(load.run_dir)}
            points.append(point)
            out.print(f"  {count} replica(s): {point['throughput']:.1f} orders/s at saturation, "
                      f"p95 {point['p95_ms']:.0f} ms", highlight=False)
    finally:
        out.print(f"[cyan]•[/] scaling {req.service} back to {original}", highlight=False)
        control.scale(req.state_dir, [f"{req.service}={original}"])
    efficiencies(points)
    largest = points[-1]
    result = {
        "service": req.service, "scenario": req.scenario, "duration_s": req.duration_s, "path": vars(path),
        "capacity": capacity, "users_per_replica": per_slot_users, "points": points,
        "min_efficiency": req.min_efficiency, "efficiency": largest["efficiency"],
        "passed": largest["efficiency"] >= req.min_efficiency,
        "command": f"chaoslab scale-test {req.service} --replicas {','.join(map(str, req.replicas))} "
                   f"--scenario {req.scenario} --duration {req.duration_s:g}s",
    }
    (req.run_dir / "scaling.json").write_text(json.dumps(result, indent=2) + "\n")
    (req.run_dir / "scaling.md").write_text(markdown(result))
    out.print(table(result))
    verdict = "[green]meets[/]" if result["passed"] else "[bold red]misses[/]"
    out.print(f"efficiency with {largest['replicas']} replicas: {largest['efficiency']:.2f} "
              f"(throughput x{largest['speedup']:.2f}) {verdict} the target {req.min_efficiency:g}; "
              f"results in {req.run_dir}/scaling.json and scaling.md", highlight=False)
    return result


def _explain(out: Console, req: ScaleRequest, capacity: dict[str, Any], per_slot_users: int) -> None:
    per = capacity["per_replica"]
    largest = max(req.replicas)
    out.print(
        f"[bold]scale-test {req.service}[/]: {req.scenario} scenario, {req.duration_s:g} s per replica count, "
        f"{per_slot_users} peak users per replica, orders only (each order is one gRPC Charge)\n"
        f"  payments capacity: {capacity['provider_concurrency']} slots / {capacity['provider_latency_ms']:g} ms = "
        f"{per:g} charges/s per replica, {per * largest:g}/s with {largest}: kept low on purpose, so that payments "
        f"saturates long before the rest of the shop and Locust, which share this machine's cores",
        highlight=False)
    if per * largest > MAX_SENSIBLE_CAPACITY:
        out.print(
            f"[yellow]warning:[/] {per * largest:g} charges/s is more than this 2-core machine's shop and Locust "
            f"sustain (~{MAX_SENSIBLE_CAPACITY:g}/s): the curve would measure the machine, not payments. "
            f"Slow the provider down: --provider-latency-ms {SCALING_ENV['PROVIDER_LATENCY_MS']} "
            f"--provider-concurrency {SCALING_ENV['PROVIDER_CONCURRENCY']}", highlight=False, soft_wrap=True)


def markdown(result: dict[str, Any]) -> str:
    """The table as Markdown, for docs/scaling.md."""
    cap = result["capacity"]
    lines = [
        f"`{result['command']}` (provider {cap['provider_concurrency']} slots / {cap['provider_latency_ms']:g} ms = "
        f"{cap['per_replica']:g} charges/s per replica)",
        "",
        "| replicas | peak users | orders/s at saturation | speedup | efficiency | p50 ms | p95 ms | p99 ms | errors "
        "| charges per replica |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for p in result["points"]:
        spread = " / ".join(f"{v:.0f}" for v in p["charged_by_replica"].values())
        lines.append(f"| {p['replicas']} | {p['users']} | {p['throughput']:.1f} | {p['speedup']:.2f} | "
                     f"{p['efficiency']:.2f} | {p['p50_ms']:.0f} | {p['p95_ms']:.0f} | {p['p99_ms']:.0f} | "
                     f"{p['error_ratio']:.1%} | {spread} |")
    return "\n".join(lines) + "\n"


def table(result: dict[str, Any]) -> Table:
    t = Table(title=f"{result['service']} scaling ({result['scenario']}, {result['duration_s']:g} s per count)",
              title_justify="left")
    for column in ("replicas", "peak users", "orders/s at saturation", "speedup", "efficiency", "p50 ms",
                   "p95 ms", "p99 ms", "errors", "charges per replica"):
        t.add_column(column, justify="right")
    for p in result["points"]:
        spread = " / ".join(f"{v:.0f}" for v in p["charged_by_replica"].values())
        t.add_row(str(p["replicas"]), str(p["users"]), f"{p['throughput']:.1f}", f"{p['speedup']:.2f}",
                  f"{p['efficiency']:.2f}", f"{p['p50_ms']:.0f}", f"{p['p95_ms']:.0f}", f"{p['p99_ms']:.0f}",
                  f"{p['error_ratio']:.1%}", spread)
    return t
