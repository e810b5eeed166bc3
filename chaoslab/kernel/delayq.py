"""The NFQUEUE delay worker: holds every packet its queue gets for a delay with jitter, then lets it go.

This machine's kernel has no netem, so packet delay is done in userspace: the fault's iptables rule hands the
matched packets to queue N (`-j NFQUEUE --queue-num N --queue-bypass`), this process reads them (metadata only)
and gives each its ACCEPT verdict DELAY +- JITTER later. Packets leave in the order they came (a release time
never precedes the one before it), as from a real link. With --queue-bypass, packets pass undelayed whenever no
worker is bound (crashed, ended): never a blackhole by accident. The worker ends by itself after --ttl-s.

    python -m chaoslab.kernel.delayq --queue 18003 --delay-ms 100 --jitter-ms 20 --ttl-s 60 [--stats FILE]

It writes one JSON line to --stats every second and at its end: {"packets", "held", "max_held", "pps"}.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import signal
import sys
import time
from pathlib import Path
from typing import Any

QUEUE_MAXLEN = 20000


class DelayQueue:
    def __init__(self, queue: int, delay_s: float, jitter_s: float) -> None:
        self.queue = queue
        self.delay_s = delay_s
        self.jitter_s = jitter_s
        self.packets = 0
        self.held = 0
        self.max_held = 0
        self._last_release = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None

    def _release(self, packet: Any) -> None:
        self.held -= 1
        with contextlib.suppress(RuntimeError, OSError):  # the queue was unbound at the end: bypassed now
            packet.accept()

    def on_packet(self, packet: Any) -> None:
        assert self._loop is not None
        now = self._loop.time()
        at = max(now + max(0.0, self.delay_s + random.uniform(-self.jitter_s, self.jitter_s)), self._last_release)
        self._last_release = at
        self.packets += 1
        self.held += 1
        self.max_held = max(self.max_held, self.held)
        self._loop.call_at(at, self._release, packet)

    async def run(self, ttl_s: float, stats: Path | None, ready: Path | None) -> dict[str, Any]:
        from netfilterqueue import COPY_META, NetfilterQueue

        self._loop = asyncio.get_running_loop()
        nfq = NetfilterQueue()
        nfq.bind(self.queue, self.on_packet, max_len=QUEUE_MAXLEN, mode=COPY_META)
        self._loop.add_reader(nfq.get_fd(), lambda: nfq.run(block=False))
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._loop.add_signal_handler(sig, stop.set)
        if ready is not None:
            _append(ready, "bound")
        started = time.monotonic()
        try:
            while not stop.is_set() and time.monotonic() - started < ttl_s:
                if stats is not None:  # a line a second: small, and the worker's only file I/O
                    _append(stats, json.dumps(self._stats(time.monotonic() - started)))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)
        finally:
            self._loop.remove_reader(nfq.get_fd())
            nfq.unbind()
        return self._stats(time.monotonic() - started)

    def _stats(self, elapsed: float) -> dict[str, Any]:
        return {"t": round(time.time(), 3), "packets": self.packets, "held": self.held, "max_held": self.max_held,
                "pps": round(self.packets / elapsed, 1) if elapsed > 0 else 0.0}


def _append(path: Path, line: str) -> None:
    with open(path, "a") as sink:
        sink.write(line + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaoslab.kernel.delayq", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queue", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, required=True)
    parser.add_argument("--jitter-ms", type=float, default=0.0)
    parser.add_argument("--ttl-s", type=float, required=True)
    parser.add_argument("--stats", type=Path)
    parser.add_argument("--ready", type=Path, help="a file written once the queue is bound")
    args = parser.parse_args(argv)
    worker = DelayQueue(args.queue, args.delay_ms / 1000, args.jitter_ms / 1000)
    final = asyncio.run(worker.run(args.ttl_s, args.stats, args.ready))
    if args.stats is not None:
        _append(args.stats, json.dumps({"final": True, **final}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
