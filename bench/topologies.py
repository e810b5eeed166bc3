"""The order path on both topologies, microservices (six processes) and the modular monolith (one), measured in one
run, on one machine, against one broker, with the same settings, alternated (microservices, monolith, monolith,
microservices, ...) so that the machine's drift hits both alike.

    .venv/bin/python bench/topologies.py [--rounds 2] [--rate 10] [--rate-seconds 20] [--concurrency 16]
                                         [--saturation-seconds 15]

The bench starts everything itself, as plain processes, one replica each, mutual TLS off, RATE_LIMIT_RPS=0, SQLite
databases in a temporary directory, and a throwaway RabbitMQ node of its own (own node name, ports, data dir and
HOME in the temporary directory; AMQP and distribution ports from 23000-23999, never the system broker on 5672),
killed with its whole process group at the end, on Ctrl-C and on SIGTERM too. Microservices: `python -m
services.<name>` for the six services, each upstream address variable (AUTH_URL, ..., PAYMENTS_GRPC_ADDR) pointing
at the callee's port. Monolith: `python -m services.monolith`, its public port and one admin port per module.
Every port is a free one from 23000-23999. The payments provider is set to 5 ms (1 ms jitter, 64 at once), as in
bench/overhead.py, so that the shop's CPU, not the provider's sleep, is what saturates.

Per topology, each start measures:
- start: wall time from spawning the processes to the gateway ready (its /health/ready 200 and its public port
  accepting: `gateway_ready_s`), to every process / module ready (`ready_s`), and to a first order answered 201
  (`start_s`: includes signing one customer up). The first order waits for every process' readiness: sent as soon
  as the gateway is ready, orders fail until its upstreams are, and five failures open its breaker for 5 s, a
  delay of the bench's making;
- memory: the sum of PSS (psutil memory_full_info().pss: shared pages divided among their users) over the
  topology's processes, after a warm-up (a few seconds of closed-loop orders) and again after the load;
- the number of the topology's processes and of the ports they listen on (the broker is shared and counted apart);
- latency: p50 / p99 of POST /api/orders at a fixed rate (open loop, aiohttp: each order is sent at its scheduled
  time whatever the earlier ones do, and its latency counts from that time);
- throughput at saturation: a closed loop of `--concurrency` customers placing orders back to back; orders
  answered 201 per second inside the window (a one-second ramp before it is not counted);
- CPU per order: user + system CPU seconds of the topology's processes over that window / the orders answered 201
  in it (the broker's CPU per order is reported beside it, not in it). The notifications backlog left at the
  window's end is reported, and the bench waits for it to drain before stopping the topology (the next one starts
  on an empty queue); `cpu_ms_per_order_with_drain` adds the CPU spent draining it.

Customers sign up through the gateway (chaoslab.clients.shop's paths), every order is shop.SAMPLE_ORDER with an
Idempotency-Key of its own. Every answer other than 201 (and every request without an answer) is an error; an
error ratio above 1% over all orders fails the run (exit 1, results still written). The table gives the median
of each figure per topology over the rounds, and the ratio monolith / microservices. Results go to
bench/results/topologies.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import aio_pika
import psutil
import requests

from chaoslab.clients import shop
from chaoslab.topologies.measure import Tally
from chaoslab.topologies.measure import closed_loop as _closed_loop
from chaoslab.topologies.measure import cpu_s as _cpu_s
from chaoslab.topologies.measure import listening_ports as _listening_ports
from chaoslab.topologies.measure import open_loop as _open_loop
from chaoslab.topologies.measure import pss_mb as _pss_mb
from chaoslab.topologies.measure import sign_up as _sign_up
from services import contract

REPO_ROOT = Path(__file__).resolve().parents[1]
PORTS = (23000, 23999)
RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
ADMIN_TOKEN = "topologies-bench-admin"
MICROSERVICES, MONOLITH = "microservices", "monolith"
ORDER = shop.SAMPLE_ORDER
# The same for both topologies (on top of the ports, databases and broker each is given).
SETTINGS = {
    "RATE_LIMIT_RPS": "0",
    "PROVIDER_LATENCY_MS": "5",
    "PROVIDER_JITTER_MS": "1",
    "PROVIDER_CONCURRENCY": "64",
    "HTTP_HOST": contract.LOOPBACK,
    "PYTHONUNBUFFERED": "1",
}
# Inherited variables that would steer a process elsewhere than the bench means to (addresses, ports, databases,
# TLS): dropped from the environment the bench passes on.
_STEERING_SUFFIXES = ("_URL", "_ADDR", "_PORT", "_DATABASE_URL")
_STEERING_PREFIXES = ("TLS_", "RABBITMQ_")
_STEERING = {"DATA_DIR", "REPLICA_ID", "SPANS_DIR", "ADMIN_TOKEN", "BOOTSTRAP_ADMIN"}


# -- ports -------------------------------------------------------------------------------------------------------


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((contract.LOOPBACK, port))
        except OSError:
            return False
    return True


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection((contract.LOOPBACK, port), timeout=1):
            return True
    except OSError:
        return False


class PortPool:
    """Ports from [lo, hi] that are free now and not handed out before by this pool."""

    def __init__(self, lo: int, hi: int) -> None:
        self.lo, self.hi = lo, hi
        self.given: set[int] = set()
        self._next = random.randint(lo, hi)

    def take(self, pair: bool = False) -> int:
        """A free port (with `pair`, p and p + 1 both free)."""
        span = self.hi - self.lo + 1
        for _ in range(span):
            port = self._next
            self._next = self.lo + (self._next - self.lo + 1) % span
            wanted = (port, port + 1) if pair else (port,)
            if port + len(wanted) - 1 > self.hi or any(p in self.given or not _bindable(p) for p in wanted):
                continue
            self.given.update(wanted)
            return port
        raise RuntimeError(f"no free port in {self.lo}-{self.hi}")


# -- the throwaway broker ----------------------------------------------------------------------------------------


def _amqp_accepts(port: int) -> bool:
    """The broker answers the AMQP protocol header with Connection.Start (not just a TCP accept)."""
    try:
        with socket.create_connection((contract.LOOPBACK, port), timeout=1.0) as s:
            s.sendall(b"AMQP\x00\x00\x09\x01")
            data = s.recv(8)
            return len(data) >= 7 and data[0] == 1
    except OSError:
        return False


class Broker:
    """A RabbitMQ node of the bench's own: its name, ports, data, logs, config and HOME (Erlang cookie) under
    `base`, in the foreground in its own process group, killed with that whole group."""

    def __init__(self, base: Path, port: int) -> None:
        self.base, self.port = base, port
        self.nodename = f"bench-topologies-{port}@localhost"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = base / "rabbitmq.out"

    @property
    def amqp_url(self) -> str:
        return f"amqp://guest:guest@{contract.LOOPBACK}:{self.port}/"

    def start(self, timeout_s: float = 60.0) -> float:
        """Start the node; the seconds until it speaks AMQP."""
        for d in ("home", "mnesia", "log"):
            (self.base / d).mkdir(parents=True, exist_ok=True)
        (self.base / "rabbitmq.conf").write_text(f"listeners.tcp.default = {self.port}\nloopback_users = none\n")
        (self.base / "enabled_plugins").write_text("[].\n")
        (self.base / "rabbitmq-env.conf").write_text("")  # not /etc/rabbitmq/rabbitmq-env.conf
        env = {k: v for k, v in os.environ.items() if not k.startswith("RABBITMQ_")}
        env.update(
            HOME=str(self.base / "home"),
            RABBITMQ_NODENAME=self.nodename,
            RABBITMQ_NODE_IP_ADDRESS=contract.LOOPBACK,
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.port + 1),
            RABBITMQ_MNESIA_BASE=str(self.base / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.base / "log"),
            RABBITMQ_CONFIG_FILE=str(self.base / "rabbitmq"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.base / "enabled_plugins"),
            RABBITMQ_CONF_ENV_FILE=str(self.base / "rabbitmq-env.conf"),
            RABBITMQ_PID_FILE=str(self.base / "rabbit.pid"),
            ERL_EPMD_ADDRESS=contract.LOOPBACK,
        )
        if _accepts(self.port):
            raise RuntimeError(f"port {self.port} is already taken; refusing to share a broker")
        started = time.perf_counter()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([RABBITMQ_SERVER], env=env, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=self.base, start_new_session=True)
        deadline = started + timeout_s
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rabbitmq-server exited with {self.proc.returncode}; see {self.log_path}")
            if _amqp_accepts(self.port):
                return time.perf_counter() - started
            time.sleep(0.2)
        raise RuntimeError(f"rabbitmq did not accept AMQP on {self.port} within {timeout_s} s")

    def processes(self) -> list[psutil.Process]:
        return _tree(self.proc.pid) if self.proc is not None else []

    def stop(self) -> None:
        """SIGKILL to the node's whole process group, then to any process still carrying its node name."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        for proc in psutil.process_iter(["pid", "cmdline"]):
            with contextlib.suppress(psutil.Error):
                if self.nodename in " ".join(proc.info["cmdline"] or ()):
                    proc.kill()
        self.proc = None


# -- the topologies ----------------------------------------------------------------------------------------------


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def _base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if not (k in _STEERING or k.startswith(_STEERING_PREFIXES) or k.endswith(_STEERING_SUFFIXES))}


class Topology:
    """One start of one topology: its processes (each in a process group of its own), ports and files."""

    def __init__(self, kind: str, workdir: Path, ports: PortPool, amqp_url: str) -> None:
        self.kind = kind
        self.workdir = workdir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.admin_ports: dict[str, int] = {}
        (workdir / "data").mkdir(parents=True)
        (workdir / "logs").mkdir()
        self.common = {**_base_env(), **SETTINGS, "AMQP_URL": amqp_url, "ADMIN_TOKEN": ADMIN_TOKEN,
                       "SPANS_DIR": str(workdir / "spans")}
        self.public_port = ports.take()
        if kind == MONOLITH:
            self.admin_ports = {name: ports.take() for name in contract.SERVICE_NAMES}
            self.plan = {"monolith": {
                "HTTP_PORT": str(self.public_port), "DATA_DIR": str(workdir / "data"), "REPLICA_ID": "monolith-bench",
                **{f"{name.upper()}_ADMIN_PORT": str(port) for name, port in self.admin_ports.items()}}}
            self.gateway_admin = self.admin_ports[contract.GATEWAY.name]
            return
        service_ports = {name: (self.public_port if name == contract.GATEWAY.name else ports.take())
                         for name in contract.SERVICE_NAMES}
        self.admin_ports = {name: ports.take() for name in contract.SERVICE_NAMES}
        addresses = {facts.address_variable: (f"{contract.LOOPBACK}:{service_ports[facts.name]}" if facts.is_grpc
                                              else f"http://{contract.LOOPBACK}:{service_ports[facts.name]}")
                     for facts in contract.SERVICES if contract.callers_of(facts.name)}
        self.plan = {}
        for facts in contract.SERVICES:
            env = {**addresses, "ADMIN_PORT": str(self.admin_ports[facts.name]), "REPLICA_ID": f"{facts.name}-bench",
                   "DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'data' / facts.name}.db"}
            env["GRPC_PORT" if facts.is_grpc else "HTTP_PORT"] = str(service_ports[facts.name])
            self.plan[facts.name] = env
        self.gateway_admin = self.admin_ports[contract.GATEWAY.name]

    @property
    def url(self) -> str:
        return f"http://{contract.LOOPBACK}:{self.public_port}"

    def spawn(self) -> None:
        for name, env in self.plan.items():
            with open(self.workdir / "logs" / f"{name}.log", "ab") as log:
                self.procs[name] = subprocess.Popen(
                    [sys.executable, "-m", f"services.{name}"], env={**self.common, **env}, cwd=REPO_ROOT,
                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                tail = (self.workdir / "logs" / f"{name}.log").read_text(errors="replace").splitlines()[-30:]
                raise RuntimeError(f"{self.kind}: {name} exited with {proc.returncode}:\n" + "\n".join(tail))

    def processes(self) -> list[psutil.Process]:
        return [p for proc in self.procs.values() for p in _tree(proc.pid)]

    def wait_ready(self, admin_ports: list[int], public: bool, deadline: float) -> None:
        """Until every admin port in `admin_ports` answers /health/ready 200 (and, with `public`, the gateway's
        public port accepts)."""
        pending = list(admin_ports)
        while pending:
            self.check_alive()
            if time.perf_counter() > deadline:
                raise TimeoutError(f"{self.kind}: not ready (admin ports {pending})")
            port = pending[0]
            try:
                with urllib.request.urlopen(f"http://{contract.LOOPBACK}:{port}/health/ready", timeout=2) as resp:
                    if resp.status == 200 and (not public or _accepts(self.public_port)):
                        pending.pop(0)
                        continue
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM to every process group (a graceful drain), SIGKILL to what is left after `grace_s`."""
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.1, deadline - time.monotonic()))
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)


# -- measurements ------------------------------------------------------------------------------------------------


def _first_order(url: str, deadline: float) -> tuple[int, str | None]:
    """Sign a customer up and place an order, retrying until the shop answers 201 (or `deadline`): the attempts
    it took and the first failed one's answer."""
    http = requests.Session()
    client = shop.ShopClient(url, session=http, timeout_s=5)
    email, password = f"bench-first-{uuid.uuid4().hex[:10]}@example.com", "bench password"
    token = ""
    last = ""
    attempts = 0
    first_failure: str | None = None
    while time.perf_counter() < deadline:
        attempts += 1
        try:
            if not token:
                resp = client.register(email, password, "Bench")
                if resp.status_code not in (201, 409):
                    last = f"register {resp.status_code} {resp.text[:200]}"
                    first_failure = first_failure or last
                    time.sleep(0.2)
                    continue
                resp = client.login(email, password)
                if resp.status_code != 200:
                    last = f"login {resp.status_code} {resp.text[:200]}"
                    first_failure = first_failure or last
                    time.sleep(0.2)
                    continue
                token = resp.json()["access_token"]
            resp = client.request("POST", shop.ORDERS, json=ORDER, timeout_s=shop.ORDER_TIMEOUT_S, headers={
                "Authorization": f"Bearer {token}", "Idempotency-Key": uuid.uuid4().hex})
            if resp.status_code == 201:
                return attempts, first_failure
            last = f"order {resp.status_code} {resp.text[:200]}"
        except requests.RequestException as exc:
            last = exc.__class__.__name__
        first_failure = first_failure or last
        time.sleep(0.2)
    raise TimeoutError(f"no first order answered 201 ({last})")


async def _queue_depth(amqp_url: str) -> int | None:
    """Messages ready on notifications' order events queue (None: no such queue or no broker)."""
    try:
        connection = await aio_pika.connect(amqp_url, timeout=5)
    except Exception:  # any failure to reach the broker: unknown depth
        return None
    async with connection:
        try:
            channel = await connection.channel()
            queue = await channel.declare_queue(contract.ORDER_EVENTS_QUEUE, passive=True)
            return int(queue.declaration_result.message_count)
        except Exception:  # no such queue yet
            return None


async def _drain(amqp_url: str, timeout_s: float) -> tuple[int | None, float]:
    """The backlog now, and the seconds until it is empty (capped at `timeout_s`)."""
    started = time.perf_counter()
    backlog = depth = await _queue_depth(amqp_url)
    while depth and time.perf_counter() - started < timeout_s:
        await asyncio.sleep(0.25)
        depth = await _queue_depth(amqp_url)
    return backlog, round(time.perf_counter() - started, 2)


def measure(kind: str, workdir: Path, ports: PortPool, broker: Broker, args: argparse.Namespace) -> dict[str, Any]:
    topology = Topology(kind, workdir, ports, broker.amqp_url)
    try:
        spawned = time.perf_counter()
        topology.spawn()
        deadline = spawned + args.start_timeout
        topology.wait_ready([topology.gateway_admin], public=True, deadline=deadline)
        gateway_ready_s = time.perf_counter() - spawned
        # Every process / module ready before the first order: the gateway is ready before its upstreams are, and
        # orders sent into that gap trip its breakers (5 failures: 5 s open), which would measure the bench's
        # impatience rather than the topology.
        topology.wait_ready(list(topology.admin_ports.values()), public=False, deadline=deadline)
        ready_s = time.perf_counter() - spawned
        first_order_attempts, first_order_failure = _first_order(topology.url, deadline)
        start_s = time.perf_counter() - spawned
        topology.check_alive()
        procs = topology.processes()
        listening = _listening_ports(procs)
        tokens = asyncio.run(_sign_up(topology.url, args.concurrency))

        tally = Tally()
        warm = asyncio.run(_closed_loop(topology.url, tokens, args.warmup, 0.0, tally, procs, broker.processes()))
        time.sleep(1.0)  # let the warm-up's garbage settle
        pss_warm = _pss_mb(procs)
        fixed_tally = Tally()
        fixed = asyncio.run(_open_loop(topology.url, tokens, args.rate, args.rate_seconds, fixed_tally))
        saturation_tally = Tally()
        saturation = asyncio.run(_closed_loop(topology.url, tokens, args.saturation_seconds, 1.0, saturation_tally,
                                              procs, broker.processes()))
        backlog, drain_s = asyncio.run(_drain(broker.amqp_url, args.drain_timeout))
        cpu_with_drain = _cpu_s(procs) - saturation.pop("_cpu_before")
        pss_after = _pss_mb(procs)
        topology.check_alive()
        all_tally = Tally()
        for t in (tally, fixed_tally, saturation_tally):
            for status, n in t.statuses.items():
                all_tally.statuses[status] = all_tally.statuses.get(status, 0) + n
            all_tally.first_error = all_tally.first_error or t.first_error
        return {
            "topology": kind,
            "gateway_ready_s": round(gateway_ready_s, 2),
            "ready_s": round(ready_s, 2),
            "start_s": round(start_s, 2),
            "first_order_attempts": first_order_attempts,
            "first_order_failure": first_order_failure,
            "pss_mb": pss_warm,
            "pss_mb_after_load": pss_after,
            "processes": len(procs),
            "listening_ports": len(listening),
            "fixed_rate": {**fixed, **fixed_tally.summary()},
            "p50_ms": fixed["p50_ms"],
            "p99_ms": fixed["p99_ms"],
            "saturation": {**saturation, **saturation_tally.summary(), "notifications_backlog": backlog,
                           "drain_s": drain_s},
            "throughput_rps": saturation["throughput_rps"],
            "cpu_ms_per_order": saturation["cpu_ms_per_order"],
            "cpu_utilisation": saturation["cpu_utilisation"],
            "cpu_ms_per_order_with_drain": round(cpu_with_drain * 1000 / max(saturation["orders_201"], 1), 2),
            "warmup": {"throughput_rps": warm["throughput_rps"], **tally.summary()},
            "errors": all_tally.summary(),
        }
    finally:
        topology.stop()


FIGURES = (  # (key, label, unit)
    ("start_s", "start: spawn -> first order 201", "s"),
    ("ready_s", "  spawn -> all ready", "s"),
    ("gateway_ready_s", "  spawn -> gateway ready", "s"),
    ("pss_mb", "memory PSS after warm-up", "MB"),
    ("pss_mb_after_load", "memory PSS after the load", "MB"),
    ("processes", "processes", ""),
    ("listening_ports", "listening ports", ""),
    ("p50_ms", "p50 at fixed rate", "ms"),
    ("p99_ms", "p99 at fixed rate", "ms"),
    ("throughput_rps", "throughput at saturation", "orders/s"),
    ("cpu_ms_per_order", "CPU per order (saturation)", "ms"),
    ("cpu_ms_per_order_with_drain", "CPU per order incl. notif. drain", "ms"),
    ("cpu_utilisation", "CPU busy at saturation", "cores"),
)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # so the `finally` blocks that stop the processes run on SIGTERM too


def main() -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored (`cmd &`)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2,
                        help="pairs of starts; round 1 microservices then monolith, round 2 the other way, ...")
    parser.add_argument("--rate", type=float, default=10.0, help="orders/s of the fixed-rate (latency) phase")
    parser.add_argument("--rate-seconds", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=16, help="customers of the saturation phase")
    parser.add_argument("--saturation-seconds", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of closed-loop orders before measuring")
    parser.add_argument("--start-timeout", type=float, default=60.0)
    parser.add_argument("--drain-timeout", type=float, default=30.0)
    parser.add_argument("--max-error-ratio", type=float, default=0.01)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, databases)")
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "results" / "topologies.json")
    args = parser.parse_args()

    began = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="chaoslab-topologies-"))
    ports = PortPool(*PORTS)
    broker = Broker(workdir / "rabbit", ports.take(pair=True))
    (workdir / "rabbit").mkdir()
    runs: list[dict[str, Any]] = []
    try:
        broker_s = broker.start()
        print(f"broker {broker.nodename} on {broker.port} ready in {broker_s:.1f} s ({workdir})", flush=True)
        order: list[str] = []
        for round_no in range(args.rounds):
            order += [MICROSERVICES, MONOLITH] if round_no % 2 == 0 else [MONOLITH, MICROSERVICES]
        for i, kind in enumerate(order):
            run = measure(kind, workdir / f"{i + 1}-{kind}", ports, broker, args)
            runs.append(run)
            print(f"{i + 1}/{len(order)} {kind:>13}: start {run['start_s']} s (ready {run['ready_s']} s), "
                  f"PSS {run['pss_mb']} MB, {run['processes']} processes, {run['listening_ports']} ports, "
                  f"p50 {run['p50_ms']} ms, p99 {run['p99_ms']} ms, {run['throughput_rps']} orders/s, "
                  f"{run['cpu_ms_per_order']} ms CPU/order, errors {run['errors']['errors']}/"
                  f"{run['errors']['requests']}, backlog {run['saturation']['notifications_backlog']}", flush=True)
        broker_pss = _pss_mb(broker.processes())
    finally:
        broker.stop()
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    median: dict[str, dict[str, float]] = {}
    for kind in (MICROSERVICES, MONOLITH):
        mine = [r for r in runs if r["topology"] == kind]
        median[kind] = {key: statistics.median(r[key] for r in mine) for key, _, _ in FIGURES}
    ratios = {key: (round(median[MONOLITH][key] / median[MICROSERVICES][key], 3)
                    if median[MICROSERVICES][key] else None) for key, _, _ in FIGURES}
    requests_total = sum(r["errors"]["requests"] for r in runs)
    errors_total = sum(r["errors"]["errors"] for r in runs)
    error_ratio = errors_total / max(requests_total, 1)
    ok = error_ratio <= args.max_error_ratio
    summary = {
        "machine": {"cpus": psutil.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
                    "python": platform.python_version()},
        "settings": {**{k: v for k, v in vars(args).items() if k != "output"},
                     "environment": SETTINGS, "order": [r["topology"] for r in runs]},
        "broker_pss_mb": broker_pss,
        "runs": runs,
        "median": median,
        "ratio_monolith_over_microservices": ratios,
        "errors": {"requests": requests_total, "errors": errors_total, "ratio": round(error_ratio, 5),
                   "max_ratio": args.max_error_ratio, "ok": ok},
        "wall_s": round(time.perf_counter() - began, 1),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(summary, indent=2) + "\n")

    head = f"median of {args.rounds} each"
    print(f"\n{head:<36} {'microservices':>14} {'monolith':>10} {'mono/micro':>11}")
    for key, label, unit in FIGURES:
        label = f"{label} [{unit}]" if unit else label
        ratio = ratios[key]
        print(f"{label:<36} {median[MICROSERVICES][key]:>14g} {median[MONOLITH][key]:>10g} "
              f"{'-' if ratio is None else f'{ratio:.3f}':>11}")
    print(f"errors: {errors_total} of {requests_total} orders ({error_ratio:.2%}, max {args.max_error_ratio:.0%}); "
          f"broker PSS {broker_pss} MB (shared, not counted); {summary['wall_s']} s -> {args.output}")
    if not ok:
        print(f"FAILED: error ratio {error_ratio:.2%} above {args.max_error_ratio:.0%}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
