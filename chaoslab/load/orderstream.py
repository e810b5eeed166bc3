"""A small built-in order stream: customers placing orders through the gateway at a steady rate.

`chaoslab chaos run --load orders` runs it in the background (chaoslab.load.background), so an experiment has
traffic to hide or reveal a weakness without a Locust scenario. Every request is one JSON line in --out
({"t", "status", "s", "order_id"?}); SIGTERM stops it and a summary line ({"summary": {...}}) ends the file.
It logs in once at start as the lab's probe customer, as a client holding a token would.

    python -m chaoslab.load.orderstream --state-dir STATE --rate 8 --out RUN/load.jsonl
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import requests

from chaoslab.clients import shop
from chaoslab.lab import registry

REQUEST_TIMEOUT_S = 15.0


class Stream:
    def __init__(self, customer: shop.StoredCustomer, rate: float, workers: int, out: Path) -> None:
        self.customer = customer
        self.interval = workers / rate  # each worker paces itself; together they make `rate`
        self.workers = workers
        self.out = out
        self.stop = threading.Event()
        self.stop_requested = False  # set by the signal handler: Event.set() there can deadlock with wait()
        self.lock = threading.Lock()
        self.statuses: Counter[int] = Counter()
        self.latencies: list[float] = []
        self.token = ""
        self.token_lock = threading.Lock()

    def _record(self, status: int, seconds: float, order_id: str | None) -> None:
        line: dict[str, Any] = {"t": round(time.time(), 3), "status": status, "s": round(seconds, 4)}
        if order_id:
            line["order_id"] = order_id
        with self.lock:
            self.statuses[status] += 1
            self.latencies.append(seconds)
            with open(self.out, "a", encoding="utf-8") as sink:
                sink.write(json.dumps(line) + "\n")

    def _relogin(self, expired: str) -> str:
        """A new token after a 401 (the access token lives 15 min; a soak outlives it). One worker logs in,
        the others pick its token up; during an auth outage the old one is kept and the 401s recorded."""
        with self.token_lock:
            if self.token != expired:
                return self.token
            # auth down or slow: keep the old token, record the failures, try again at the next 401
            with contextlib.suppress(Exception):
                self.token = self.customer.customer(fresh=True).token
            return self.token

    def _worker(self, offset: float) -> None:
        client = shop.ShopClient(self.customer.client.gateway_url)  # a connection pool per worker
        next_at = time.monotonic() + offset
        while not self.stop.is_set():
            self.stop.wait(max(0.0, next_at - time.monotonic()))
            if self.stop.is_set():
                break
            next_at += self.interval
            token = self.token
            headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": uuid.uuid4().hex}
            started = time.monotonic()
            order_id = None
            try:
                resp = client.request("POST", shop.ORDERS, json=shop.SAMPLE_ORDER, headers=headers,
                                      timeout_s=REQUEST_TIMEOUT_S)
                status = resp.status_code
                if status in (200, 201):
                    order_id = resp.json().get("id")
            except (requests.RequestException, ValueError):
                status = 0
            self._record(status, time.monotonic() - started, order_id)
            if status == 401:
                self._relogin(token)
            next_at = max(next_at, time.monotonic())  # after a slow answer, do not fire a burst to catch up

    def run(self) -> dict[str, Any]:
        self.token = self.customer.customer().token
        threads = [threading.Thread(target=self._worker, args=(i * self.interval / self.workers,),
                                    daemon=True) for i in range(self.workers)]
        for thread in threads:
            thread.start()
        while not self.stop_requested:
            time.sleep(0.2)
        self.stop.set()
        for thread in threads:
            thread.join(REQUEST_TIMEOUT_S + 1)
        return self.summary()

    def summary(self) -> dict[str, Any]:
        with self.lock:
            total = sum(self.statuses.values())
            failed = sum(n for s, n in self.statuses.items() if s == 0 or s >= 500)
            ordered = sorted(self.latencies)
        p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] if ordered else 0.0
        return {"requests": total, "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
                "error_ratio": round(failed / total, 4) if total else 0.0, "p99_s": round(p99, 4)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m chaoslab.load.orderstream", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--rate", type=float, default=8.0, help="orders per second")
    parser.add_argument("--workers", type=int, default=8, help="concurrent customers (slow answers overlap)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    state = Path(args.state_dir).resolve()
    gateway = registry.find(state)["gateway_url"]
    customer = shop.StoredCustomer(shop.ShopClient(gateway), state / "chaos" / "customer.json")
    stream = Stream(customer, args.rate, args.workers, args.out)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: setattr(stream, "stop_requested", True))
    summary = stream.run()
    with open(args.out, "a", encoding="utf-8") as sink:
        sink.write(json.dumps({"summary": summary}) + "\n")


if __name__ == "__main__":
    main()
