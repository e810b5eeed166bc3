"""What mutual TLS costs on the order path: throughput and p50/p99 latency of a lab with `--tls on` next to one with
`--tls off`, both running for the whole run and driven in turns (off, on, on, off, ...: counterbalanced, as
bench/overhead.py does for instrumentation), so that this machine's drift and jumps hit both alike.

    .venv/bin/python bench/mtls.py [--seconds 10] [--concurrency 8] [--rounds 6]

The order path is gateway -> orders -> users (HTTPS) + payments (gRPC over TLS) -> outbox -> RabbitMQ (AMQPS) ->
notifications; the client's hop to the gateway is plain HTTP in both (the edge). As in overhead.py the payments
provider answers in 5 ms, so the services' CPU, where TLS costs, is the bottleneck; instrumentation and sampling are
the lab's defaults in both. The labs are the same but for --tls; the idle one costs both alike (Prometheus scrapes,
probes). Each window also reports the services' CPU per order (no certificate is renewed within a run: the default
lifetime is an hour). Results: bench/results/mtls.json; the README's Measured table quotes the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from overhead import _cpu_by_program, _cpu_ms_per_order, _drive, _settle, _tokens

from chaoslab.lab import control
from chaoslab.lab.ports import SPAN, find_free_base
from chaoslab.lab.spec import default_replicas

MODES = ("off", "on")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # so the `finally` that stops the benchmark's labs runs on SIGTERM too


def main() -> None:
    signal.signal(signal.SIGTERM, _interrupt)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=6, help="pairs of off/on windows, counterbalanced")
    args = parser.parse_args()
    env = {"*": {"RATE_LIMIT_RPS": "0"},
           "payments": {"PROVIDER_LATENCY_MS": "5", "PROVIDER_JITTER_MS": "1", "PROVIDER_CONCURRENCY": "64"}}
    results: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory(prefix="chaoslab-mtls-") as tmp:
        states = {mode: str(Path(tmp) / mode) for mode in MODES}
        started: list[str] = []
        try:
            gateways, tokens = {}, {}
            base = find_free_base(26000, 30000)
            for mode in MODES:
                registry = control.up(states[mode], base, default_replicas(), env=env, tls=mode == "on")
                started.append(states[mode])
                gateways[mode] = registry["gateway_url"]
                tokens[mode] = _tokens(gateways[mode], args.concurrency)
                asyncio.run(_settle(gateways[mode], tokens[mode][0]))
                base = find_free_base(base + SPAN, 30000)
            for round_no in range(args.rounds):
                for mode in (MODES if round_no % 2 == 0 else MODES[::-1]):
                    cpu_before = _cpu_by_program(states[mode])
                    measured = asyncio.run(_drive(gateways[mode], tokens[mode], args.seconds, args.warmup))
                    orders = int((args.seconds + args.warmup) * measured["throughput_rps"])
                    measured["cpu_ms_per_order"] = _cpu_ms_per_order(cpu_before, _cpu_by_program(states[mode]),
                                                                     orders)
                    results[mode].append(measured)
                    print(f"tls {mode:>3}: {measured}", flush=True)
                    time.sleep(1.0)
        finally:
            for state in started:
                control.down(state)

    def median(mode: str, key: str) -> float:
        return round(statistics.median(r[key] for r in results[mode]), 1)

    def cpu(mode: str, service: str) -> float:
        return round(statistics.median(r["cpu_ms_per_order"].get(service, 0.0) for r in results[mode]), 2)

    services = sorted(results["on"][0]["cpu_ms_per_order"])
    summary: dict[str, Any] = {
        "settings": vars(args),
        "rounds": results,
        "median": {mode: {k: median(mode, k) for k in ("throughput_rps", "p50_ms", "p99_ms")} for mode in MODES},
        "cpu_ms_per_order": {mode: {s: cpu(mode, s) for s in services} for mode in MODES},
        "failures": {mode: sum(r["failures"] for r in results[mode]) for mode in MODES},
    }
    summary["throughput_ratio_on_off"] = round(median("on", "throughput_rps") / median("off", "throughput_rps"), 3)
    summary["p50_ratio_on_off"] = round(median("on", "p50_ms") / median("off", "p50_ms"), 3)
    summary["p99_ratio_on_off"] = round(median("on", "p99_ms") / median("off", "p99_ms"), 3)
    out = Path(__file__).parent / "results" / "mtls.json"
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"mTLS on/off: throughput x{summary['throughput_ratio_on_off']}, p50 x{summary['p50_ratio_on_off']}, "
          f"p99 x{summary['p99_ratio_on_off']} ({summary['median']['off']['throughput_rps']} -> "
          f"{summary['median']['on']['throughput_rps']} orders/s; p50 {summary['median']['off']['p50_ms']} -> "
          f"{summary['median']['on']['p50_ms']} ms; p99 {summary['median']['off']['p99_ms']} -> "
          f"{summary['median']['on']['p99_ms']} ms) -> {out}")


if __name__ == "__main__":
    main()
