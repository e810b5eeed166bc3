"""What instrumentation costs on the order path: throughput and p50/p99 latency with INSTRUMENTATION=on and off,
alternated in one run on one lab (off, on, on, off, ...: counterbalanced) so that machine noise and drift hit both
alike.

    .venv/bin/python bench/overhead.py [--seconds 10] [--concurrency 8] [--rounds 6] [--ratio 1.0] [--per-second N]

The order path is gateway -> orders -> users (REST) + payments (gRPC) -> outbox -> RabbitMQ -> notifications.
The payments provider is set to 5 ms so that the services' CPU, where instrumentation costs, is the bottleneck
(its 50 ms default would hide the overhead behind a sleep). `--ratio` is OTEL_TRACES_SAMPLER_ARG for the "on"
rounds (default 1.0) and `--per-second` TRACES_PER_SECOND (default: unset, the services' own default of 20 new
traces a second per replica; 0 traces every order): the defaults are the lab's default sampling. Each "on" round
also counts how many of its orders were traced (the gateway's root spans in the lab's span files), since under this
saturating load the cap, not the ratio, decides that. Target (issue 3): instrumented throughput >= 85% of
uninstrumented. Results go to bench/results/overhead.json (other settings: overhead-<settings>.json).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from chaoslab.clients import shop
from chaoslab.lab import control
from chaoslab.lab.paths import LabPaths
from chaoslab.lab.ports import find_free_base
from chaoslab.lab.spec import default_replicas
from chaoslab.observability.traces import spans_in

ORDER = shop.SAMPLE_ORDER


def _tokens(gw: str, n: int) -> list[str]:
    """n customers' access tokens: the load's workers each act as their own customer."""
    client = shop.ShopClient(gw)
    return [client.sign_up(password="bench password").token for _ in range(n)]


async def _settle(gw: str, token: str, timeout_s: float = 60) -> None:
    """After a restart, wait until orders go through again (breakers closed, keys fetched, pools warm)."""
    deadline = time.monotonic() + timeout_s
    ok = 0
    async with aiohttp.ClientSession() as http:
        while ok < 5 and time.monotonic() < deadline:
            async with http.post(f"{gw}{shop.ORDERS}", json=ORDER, headers={
                    "Authorization": f"Bearer {token}", "Idempotency-Key": uuid.uuid4().hex}) as resp:
                ok = ok + 1 if resp.status == 201 else 0
            if not ok:
                await asyncio.sleep(0.5)


async def _drive(gw: str, tokens: list[str], seconds: float, warmup_s: float) -> dict[str, Any]:
    """Closed loop: each worker places orders back to back; only answers inside the window count."""
    latencies: list[float] = []
    failures = 0
    statuses: dict[int, int] = {}
    first_failure: list[str] = []
    start = time.perf_counter() + warmup_s
    end = start + seconds

    async def worker(token: str, http: aiohttp.ClientSession) -> None:
        nonlocal failures
        headers = {"Authorization": f"Bearer {token}"}
        while (now := time.perf_counter()) < end:
            async with http.post(f"{gw}{shop.ORDERS}", json=ORDER,
                                 headers={**headers, "Idempotency-Key": uuid.uuid4().hex}) as resp:
                body = await resp.read()
                done = time.perf_counter()
                if now >= start and done <= end:
                    statuses[resp.status] = statuses.get(resp.status, 0) + 1
                    if resp.status == 201:
                        latencies.append(done - now)
                    else:
                        failures += 1
                        if not first_failure:
                            first_failure.append(body.decode(errors="replace")[:300])

    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as http:
        await asyncio.gather(*(worker(t, http) for t in tokens))
    latencies.sort()
    return {
        "throughput_rps": round(len(latencies) / seconds, 1),
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 1) if latencies else 0.0,
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 1) if latencies else 0.0,
        "failures": failures,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "first_failure": first_failure[0] if first_failure else None,
    }


def _cpu_by_program(state: str) -> dict[str, float]:
    """CPU seconds (user + system) used so far by each lab program, by supervisord program name. A program's
    children count too: RabbitMQ's program is a script whose Erlang VM (beam.smp) does the work."""
    out: dict[str, float] = {}
    for info in control.status(state).processes:
        try:
            proc = psutil.Process(int(info["pid"]))
            tree = [proc, *proc.children(recursive=True)]
        except (psutil.Error, ValueError):
            continue
        used = 0.0
        for p in tree:
            try:
                times = p.cpu_times()
            except psutil.Error:
                continue  # a child that ended in between
            used += times.user + times.system
        out[str(info["name"])] = used
    return out


def _cpu_ms_per_order(before: dict[str, float], after: dict[str, float], orders: int) -> dict[str, float]:
    """CPU milliseconds per placed order, by service (replicas summed), over one measured round."""
    per_service: dict[str, float] = {}
    for name, used in after.items():
        service = name.rsplit("-", 1)[0] if name[-1].isdigit() else name
        per_service[service] = per_service.get(service, 0.0) + used - before.get(name, used)
    return {k: round(v * 1000 / max(orders, 1), 2) for k, v in sorted(per_service.items())}


def _traced_share(spans_dir: Path, start_s: float, end_s: float, requests: int) -> float:
    """The share of the window's order requests whose trace was recorded: the gateway's root spans that started
    and ended inside it, as the requests counted did. Each replica exports in batches about every second, so call
    this a couple of seconds later."""
    traced = sum(1 for span in spans_in(spans_dir, "gateway-*.jsonl")
                 if span["parent_id"] is None and span["name"] == f"POST {shop.ORDERS}"
                 and start_s <= span["start_ns"] / 1e9 and span["end_ns"] / 1e9 <= end_s)
    return round(traced / max(requests, 1), 3)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # so the `finally` that stops the benchmark's lab runs on SIGTERM too


def main() -> None:
    signal.signal(signal.SIGTERM, _interrupt)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=6,
                        help="pairs of off/on windows; even: each mode goes first as often. This machine's speed "
                             "changes by up to a third from one minute to the next: many short windows, medians")
    parser.add_argument("--ratio", type=float, default=1.0)
    parser.add_argument("--per-second", type=float, default=None)
    args = parser.parse_args()
    base = find_free_base(26000, 30000)
    results: dict[str, list[dict[str, Any]]] = {"off": [], "on": []}
    with tempfile.TemporaryDirectory(prefix="chaoslab-overhead-") as state:
        sampling = {"OTEL_TRACES_SAMPLER_ARG": str(args.ratio)}
        if args.per_second is not None:
            sampling["TRACES_PER_SECOND"] = f"{args.per_second:g}"
        env = {"*": {"INSTRUMENTATION": "off", "RATE_LIMIT_RPS": "0", **sampling},
               "payments": {"PROVIDER_LATENCY_MS": "5", "PROVIDER_JITTER_MS": "1", "PROVIDER_CONCURRENCY": "64"}}
        registry = control.up(state, base, default_replicas(), env=env)
        try:
            gw = registry["gateway_url"]
            tokens = _tokens(gw, args.concurrency)
            for round_no in range(args.rounds):
                # off, on, on, off, off, on, ...: this machine's speed drifts within a run (uninstrumented, 110 then
                # 94 then 81 orders/s in one run) and jumps between minutes (CPU per uninstrumented order 13.3 ms in
                # one window, 18.5 ms in another). With off always first, a drift would always favour one mode;
                # counterbalanced, it hits both alike, and many short windows let the medians ride out the jumps.
                for mode in (("off", "on") if round_no % 2 == 0 else ("on", "off")):
                    control.set_env(state, [f"INSTRUMENTATION={mode}"])
                    asyncio.run(_settle(gw, tokens[0]))
                    cpu_before = _cpu_by_program(state)
                    window_s = time.time() + args.warmup
                    measured = asyncio.run(_drive(gw, tokens, args.seconds, args.warmup))
                    # includes the warm-up's orders: CPU is counted over the whole drive, orders over the window
                    orders = int((args.seconds + args.warmup) * measured["throughput_rps"])
                    measured["cpu_ms_per_order"] = _cpu_ms_per_order(cpu_before, _cpu_by_program(state), orders)
                    if mode == "on":
                        time.sleep(2.5)  # the last batches of spans
                        measured["traced_share"] = _traced_share(LabPaths.of(state).spans, window_s,
                                                                 window_s + args.seconds,
                                                                 sum(measured["statuses"].values()))
                    results[mode].append(measured)
                    print(f"instrumentation {mode:>3}: {measured}")
        finally:
            control.down(state)

    def median(mode: str, key: str) -> float:
        return statistics.median(r[key] for r in results[mode])

    summary = {
        "settings": vars(args),
        "rounds": results,
        "median": {mode: {k: median(mode, k) for k in ("throughput_rps", "p50_ms", "p99_ms")} for mode in results},
    }
    summary["cpu_ms_per_order"] = {
        mode: {svc: statistics.median(r["cpu_ms_per_order"].get(svc, 0.0) for r in results[mode])
               for svc in results[mode][0]["cpu_ms_per_order"]}
        for mode in results
    }
    summary["throughput_ratio_on_off"] = round(median("on", "throughput_rps") / median("off", "throughput_rps"), 3)
    summary["target_ratio"] = 0.85
    summary["traced_share_on"] = median("on", "traced_share")
    # The default sampling's result is the one the README's target row quotes; other settings are kept beside it.
    name = "overhead"
    if args.ratio != 1.0:
        name += f"-ratio-{args.ratio:g}"
    if args.per_second is not None:
        name += f"-per-second-{args.per_second:g}"
    out = Path(__file__).parent / "results" / f"{name}.json"
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"throughput on/off = {summary['throughput_ratio_on_off']} (target >= 0.85), "
          f"{summary['traced_share_on']:.0%} of orders traced; "
          f"p50 {summary['median']['off']['p50_ms']} -> {summary['median']['on']['p50_ms']} ms, "
          f"p99 {summary['median']['off']['p99_ms']} -> {summary['median']['on']['p99_ms']} ms -> {out}")


if __name__ == "__main__":
    main()
