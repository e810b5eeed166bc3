"""How many packets a second the NFQUEUE delay worker (chaoslab.kernel.delayq) holds and releases.

    .venv/bin/python bench/nfqueue_delay.py --state-dir STATE   (a running isolated lab; root)

A delay fault of DELAY_MS from the clients (this machine) to orders-1, then UDP datagrams of 64 bytes sent as fast
as one sender can to orders-1 for DURATION_S (to a port nobody listens on: only the path is measured), then the
worker's own counters (its stats file) and what the sender sent. Results: bench/results/nfqueue_delay.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import socket
import time
from pathlib import Path

from chaoslab.kernel import faults, store
from chaoslab.lab.spec import load_spec

DELAY_MS = 1.0
DURATION_S = 5.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "nfqueue_delay.json")
    args = parser.parse_args()
    spec = load_spec(args.state_dir)
    target = spec.net.address_of("orders-1")
    record = faults.network_fault(spec, "delay", "orders-1", source="clients", delay_ms=DELAY_MS, ttl_s=60)
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        payload = b"x" * 64
        sent = 0
        started = time.monotonic()
        while time.monotonic() - started < DURATION_S:
            try:
                sock.sendto(payload, (target, 9))
                sent += 1
            except OSError:  # an ICMP error from an earlier datagram: count on
                pass
        elapsed = time.monotonic() - started
        time.sleep(2.0)  # the worker writes its counters every second
        stats_file = Path(next(f for f in store.get(spec, record.id).objects["files"] if f.endswith(".jsonl")))
        lines = [json.loads(x) for x in stats_file.read_text().splitlines() if x.strip()]
    finally:
        store.remove(spec, record.id)
    last = lines[-1]
    result = {
        "delay_ms": DELAY_MS, "duration_s": round(elapsed, 2), "sent": sent,
        "sent_per_s": round(sent / elapsed), "worker_packets": last["packets"],
        "worker_pps_over_the_flood": round(last["packets"] / elapsed), "max_held": last["max_held"],
        "machine": f"{platform.machine()}, {platform.python_version()}",
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
