"""Time from `chaoslab up` to all-ready, and the whole lab's memory with one replica per service.

    .venv/bin/python bench/startup_memory.py [--runs 2] [--base-port 26000] [--network isolated] [--tls off]

Each run starts a fresh lab in a temporary state dir (cold: RabbitMQ creates its database, every service its
schema), measures the wall time until every process is ready, then sums the memory of every process of the
lab: RSS (what `ps` shows; shared pages counted once per process) and PSS (shared pages divided among their
users: the honest total). Targets (issue 2): under 15 s and under 600 MB. Results go to
bench/results/startup_memory.json (startup_memory_isolated.json for --network isolated; a `_tls-off` suffix for
--tls off: mutual TLS, the lab's default, is on otherwise).
"""

from __future__ import annotations

import argparse
import json
import platform
import signal
import statistics
import tempfile
import time
from pathlib import Path

import psutil

from chaoslab.lab import control
from chaoslab.lab.ports import find_free_base
from chaoslab.lab.procs import lab_processes
from services.contract import SERVICE_NAMES

ONE_EACH = dict.fromkeys(SERVICE_NAMES, 1)


def measure_once(base: int, network: str = "loopback", tls: bool = True) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="chaoslab-bench-") as state:
        started = time.perf_counter()
        control.up(state, base, ONE_EACH, network_mode=network, tls=tls)
        ready_s = time.perf_counter() - started
        time.sleep(3)  # let start-up garbage settle before reading memory
        try:
            rss = pss = 0
            by_kind: dict[str, int] = {}
            for proc in lab_processes(Path(state)):
                try:
                    info = proc.memory_full_info()
                    cmd = " ".join(proc.cmdline())
                except psutil.Error:
                    continue
                rss += info.rss
                pss += info.pss
                kind = ("rabbitmq" if "beam" in cmd or "rabbit" in cmd else
                        "prometheus" if "prometheus --config" in cmd or cmd.startswith("/usr/bin/prometheus ") else
                        "alertmanager" if "alertmanager" in cmd else
                        "supervisord" if "supervisord" in cmd else
                        "certs" if "chaoslab.lab.rotation" in cmd else
                        "services" if "services." in cmd else "other")
                by_kind[kind] = by_kind.get(kind, 0) + info.pss
        finally:
            control.down(state)
    return {"ready_s": round(ready_s, 2), "rss_mb": round(rss / 2**20, 1), "pss_mb": round(pss / 2**20, 1),
            "pss_mb_by_kind": {k: round(v / 2**20, 1) for k, v in sorted(by_kind.items())}}


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # so the `finally` that stops the benchmark's lab runs on SIGTERM too


def main() -> None:
    signal.signal(signal.SIGTERM, _interrupt)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--base-port", type=int, default=None)
    parser.add_argument("--network", choices=("loopback", "isolated"), default="loopback",
                        help="isolated (root): every replica in a namespace of its own (results: "
                             "startup_memory_isolated.json)")
    parser.add_argument("--tls", choices=("on", "off"), default="on",
                        help="off: every hop plain, no CA, no certs program (results: ..._tls-off.json)")
    args = parser.parse_args()
    base = args.base_port or find_free_base(26000, 30000)
    runs = []
    for i in range(args.runs):
        result = measure_once(base, args.network, args.tls == "on")
        print(f"run {i + 1}: ready in {result['ready_s']} s, RSS {result['rss_mb']} MB, PSS {result['pss_mb']} MB "
              f"{result['pss_mb_by_kind']}")
        runs.append(result)
    summary = {
        "machine": {"cpus": psutil.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
                    "python": platform.python_version()},
        "runs": runs,
        "median_ready_s": statistics.median(r["ready_s"] for r in runs),
        "median_pss_mb": statistics.median(r["pss_mb"] for r in runs),
        "median_rss_mb": statistics.median(r["rss_mb"] for r in runs),
        "targets": {"ready_s": 15, "memory_mb": 600},
    }
    suffix = ("" if args.network == "loopback" else f"_{args.network}") + ("" if args.tls == "on" else "_tls-off")
    summary["network"] = args.network
    summary["tls"] = args.tls
    out = Path(__file__).parent / "results" / f"startup_memory{suffix}.json"
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"median: ready {summary['median_ready_s']} s, PSS {summary['median_pss_mb']} MB, "
          f"RSS {summary['median_rss_mb']} MB -> {out}")


if __name__ == "__main__":
    main()
