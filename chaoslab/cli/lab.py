"""`chaoslab up`, `status`, `scale`, `logs`, `env`, `down`: the native lab's life (chaoslab.lab.control does the
work; these commands read their options and render what it reports)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from chaoslab.cli.console import RichReporter, err, errors, out, progress, waiting
from chaoslab.cli.options import BASE_PORT, STATE_DIR, BasePort, StateDir, Wait
from chaoslab.errors import UsageError
from chaoslab.lab import control
from chaoslab.lab.lease import current as current_lease
from chaoslab.lab.lease import lease
from chaoslab.lab.logs import follow, log_files, tail
from chaoslab.lab.paths import LabPaths
from chaoslab.lab.pki import DEFAULT_CERT_TTL_S
from chaoslab.lab.ports import SERVICES
from chaoslab.lab.spec import (
    MICROSERVICES,
    MONOLITH,
    TOPOLOGIES,
    load_spec,
    monolith_replicas,
    parse_env,
    parse_monolith_count,
    parse_replicas,
)

app = typer.Typer()


def _urls_table(registry: dict[str, Any]) -> Table:
    table = Table(title=f"chaoslab on base port {registry['base_port']}", title_justify="left")
    table.add_column("what")
    table.add_column("where")
    table.add_column("replicas", justify="right")
    for name, svc in registry["services"].items():
        where = svc["url"] or (f"gRPC {svc['grpc_addr']}" if svc.get("grpc_addr") else "in process (monolith)")
        hosts = ", ".join(r["address"] for r in svc["replicas"] if r.get("address") != svc.get("address"))
        table.add_row(name, where + (f" (replicas at {hosts})" if hosts else ""), str(len(svc["replicas"])))
    broker = registry["broker"]
    table.add_row("RabbitMQ", broker["amqp_url"], "")
    table.add_row("RabbitMQ metrics", broker["metrics_url"], "")
    table.add_row("Prometheus", registry["prometheus_url"], "")
    table.add_row("Alertmanager", registry["alertmanager_url"], "")
    table.add_row("alert webhook", f"{registry['webhook_url']}/notifications", "")
    return table


def _uptime(info: dict[str, Any]) -> str:
    if info.get("statename") != "RUNNING" or not info.get("start"):
        return "-"
    seconds = int(info["now"]) - int(info["start"])
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


STATE_STYLE = {"RUNNING": "green", "STARTING": "yellow", "BACKOFF": "yellow", "STOPPED": "dim",
               "EXITED": "red", "FATAL": "bold red", "STOPPING": "yellow"}


def _state(text: str) -> str:
    return f"[{STATE_STYLE.get(text, 'white')}]{text}[/]"


# --- up --------------------------------------------------------------------------------------------------

@app.command(
    epilog="Examples:\n\n"
    "  chaoslab up\n\n"
    "  chaoslab up --replicas orders=3 --replicas payments=2\n\n"
    "  chaoslab up --state-dir /tmp/lab2 --base-port 19000   (a second lab beside the first)\n\n"
    "  chaoslab up --database-url-template 'postgresql+asyncpg://postgres@127.0.0.1:5432/chaoslab_{service}'\n\n"
    "  sudo -E .venv/bin/chaoslab up --network isolated   (faults below the application: namespaces, iptables, "
    "cgroups, disks, clocks)\n\n"
    "Ports (base B): services B+0..B+5 (payments is gRPC on B+4), RabbitMQ B+10 (AMQP), B+11 (Erlang), "
    "B+12 (metrics), Prometheus B+20, Alertmanager B+21, webhook B+22, replica admin ports "
    "B+100+20*i+(n-1). Scrape and rule evaluation interval: 2 s. Needs the Debian packages prometheus, "
    "prometheus-alertmanager and rabbitmq-server: each binary is looked up on PATH; for RabbitMQ, the "
    "directory of the real file behind `rabbitmq-server` (symlinks followed: /usr/lib/rabbitmq/bin on Debian) "
    "must hold the foreground rabbitmq-server and rabbitmqctl, which the lab runs. Variables set in the shell (e.g. "
    "PROVIDER_LATENCY_MS, LOG_LEVEL) reach every service; --env sets them for one service and is remembered "
    "(chaoslab env changes them on a running lab).",
)
def up(
    state_dir: StateDir = STATE_DIR,
    base_port: BasePort = BASE_PORT,
    replicas: Annotated[list[str] | None, typer.Option(
        "--replicas", "-r", metavar="SVC=N",
        help=f"Replicas of a service (default 1 each; 0 leaves it out). Repeat, or comma-separate. "
             f"Services: {', '.join(SERVICES)}.")] = None,
    database_url_template: Annotated[str | None, typer.Option(
        help="Database URL with {service}; PostgreSQL databases are created when missing. "
             "Default: a SQLite file per service under STATE/data.")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each stage to become ready.")]
    = control.DEFAULT_TIMEOUT_S,
    env: Annotated[list[str] | None, typer.Option(
        "--env", "-e", metavar="[SVC:]KEY=VALUE",
        help="An environment variable for one service (payments:PROVIDER_LATENCY_MS=200) or, without SVC:, "
             "for all. Repeat for more.")] = None,
    network_mode: Annotated[str, typer.Option(
        "--network", metavar="loopback|isolated",
        help="loopback: every process on 127.0.0.1, no privileges. isolated (root): every replica and RabbitMQ a "
             "host of its own on the lab's bridge (a /24 from the base port), each service at an address balanced "
             "over its ready replicas; needed by the faults below the application.")] = "loopback",
    tls: Annotated[str, typer.Option(
        "--tls", metavar="on|off",
        help="on: mutual TLS on every internal hop (HTTP between services, gRPC, AMQP) with short-lived "
             "certificates of the lab's own CA, and each service authorizing its callers from the call graph; the "
             "gateway's public port stays plain HTTP. off: every hop plain, as before (for comparison). "
             "Default: on; off with --topology monolith.")] = "",
    cert_ttl: Annotated[int, typer.Option(
        "--cert-ttl", metavar="SECONDS",
        help="Lifetime of the lab's certificates; each is renewed at half of it, without a restart.")]
    = DEFAULT_CERT_TTL_S,
    topology: Annotated[str, typer.Option(
        "--topology", metavar="microservices|monolith",
        help="microservices: each service its own replicas (the default). monolith: the six as modules of one "
             "deployable process (services/monolith), N replicas of it (--replicas monolith=N), each module with "
             "its own database and admin port, calls between modules in process; runs --tls off and loopback.")]
    = MICROSERVICES,
) -> None:
    """Start the lab: RabbitMQ, Prometheus, Alertmanager, the webhook receiver and every replica.

    Waits until all of it is ready, prints where everything is, and exits: the lab keeps running under supervisord.
    On any failure it stops what it started and says why.
    """
    with errors():
        if topology not in TOPOLOGIES:
            raise UsageError(f"--topology {topology!r}: choose {' or '.join(TOPOLOGIES)}")
        if topology == MONOLITH:
            wanted = monolith_replicas(parse_monolith_count(replicas or [], 1))
        else:
            wanted = parse_replicas(replicas or [])
        overrides = parse_env(env or [])
        tls = tls or ("off" if topology == MONOLITH else "on")
        if tls not in ("on", "off"):
            raise UsageError(f"--tls {tls!r}: choose on or off")
        started = time.monotonic()
        first_time = not LabPaths.of(state_dir).lab_json.exists()
        with progress() as bar:
            registry = control.up(state_dir, base_port, wanted, database_url_template=database_url_template,
                                  timeout_s=timeout, reporter=RichReporter(bar), env=overrides,
                                  network_mode=network_mode, tls=tls == "on", cert_ttl_s=cert_ttl,
                                  topology=topology)
        elapsed = time.monotonic() - started
        out.print(_urls_table(registry))
        account = registry["admin_account"]
        # The shop admin's password is shown once, when the lab makes it; it stays in the private state dir.
        password = account["password"] if first_time else "(in STATE/lab.json; chaoslab status --json)"
        out.print(f"shop admin: {account['email']} {password}\nadmin API token: {registry['admin_token']}   "
                  f"state dir (private, 0700): {registry['state_dir']}", highlight=False)
        if registry["network"]["mode"] == "isolated":
            out.print(f"network {registry['network']['subnet']} on bridge {registry['network']['bridge']} (this "
                      f"machine is {registry['network']['host_address']} there): the shop is at "
                      f"{registry['gateway_url']}", highlight=False)
        if registry.get("topology") == MONOLITH:
            count = len(registry["services"]["gateway"]["replicas"])
            out.print(f"topology: a modular monolith, {count} replica(s) of one process holding the six modules "
                      "(each module's admin port as its service's; killing a module kills its replica)",
                      highlight=False)
        if registry["tls"]["mode"] == "on":
            out.print(f"mutual TLS inside the shop: certificates of the lab's CA ({registry['tls']['trust_domain']}"
                      f" trust domain), renewed every {registry['tls']['cert_ttl_s'] // 2} s; the gateway's public "
                      "port is plain HTTP", highlight=False)
        out.print(f"[green]ready[/] in {elapsed:.1f} s. Next: chaoslab status, chaoslab logs gateway -f, "
                  "chaoslab down", highlight=False)


# --- status ----------------------------------------------------------------------------------------------

@app.command(
    epilog="Examples:\n\n"
    "  chaoslab status\n\n"
    "  chaoslab status --json | jq '.services.orders.replicas[].admin_url'\n\n"
    "Exit code: 0 when every program runs and every replica is ready, 1 when no lab runs, 2 when some "
    "part is not running or not ready. With --json: 0 whenever the state dir holds a lab.",
)
def status(
    state_dir: StateDir = STATE_DIR,
    as_json: Annotated[bool, typer.Option("--json", help="Print the registry (docs/design.md) as JSON, plus "
                                                         "`lease`: who holds the lab's lease, or null.")]
    = False,
) -> None:
    """Show every process, every replica's ports and readiness, the broker, the alerts that fire, and which
    command holds the lab's lease."""
    with errors():
        st = control.status(state_dir)
    holder = current_lease(state_dir)
    if as_json:
        sys.stdout.write(json.dumps({**st.registry, "lease": holder.to_json() if holder else None}, indent=2) + "\n")
        raise typer.Exit(0)
    reg = st.registry
    if not st.running:
        out.print(f"no lab runs in {reg['state_dir']} (start it: chaoslab up --state-dir {reg['state_dir']})",
                  highlight=False)
        raise typer.Exit(1)
    info = {p["name"]: p for p in st.processes}
    table = Table(title=f"chaoslab in {reg['state_dir']} (base port {reg['base_port']})", title_justify="left")
    for col in ("program", "state", "pid", "uptime", "address", "port", "ready"):
        table.add_column(col)
    ports = st.spec.ports
    infra = {"rabbitmq": f"{ports.amqp}, {ports.rabbitmq_metrics}", "prometheus": str(ports.prometheus),
             "alertmanager": str(ports.alertmanager), "webhook": str(ports.webhook)}
    if st.spec.isolated:
        infra["endpoints"] = str(ports.endpoints)
    if st.spec.tls:
        infra["certs"] = str(ports.certs)  # the renewals of the lab's certificates
    healthy = True
    for name, port in infra.items():
        p = info.get(name, {})
        state = p.get("statename", "STOPPED")
        ready = reg["broker"]["state"] == "RUNNING" if name == "rabbitmq" else state == "RUNNING"
        healthy &= ready
        address = reg["broker"]["address"] if name == "rabbitmq" else "127.0.0.1"
        table.add_row(name, _state(state), str(p.get("pid", 0)), _uptime(p), address, port, _ready(ready))
    for svc in reg["services"].values():
        for rep in svc["replicas"]:
            p = info.get(rep.get("program") or rep["name"], {})
            port = rep["admin_url"].rsplit(":", 1)[1]
            address = svc["url"] or svc.get("grpc_addr")
            public = address.rsplit(":", 1)[1] if address else f"in {rep.get('program')}"
            healthy &= rep["ready"]
            table.add_row(rep["name"], _state(rep["state"]), str(rep["pid"]), _uptime(p), rep["address"],
                          f"{public} / admin {port}", _ready(rep["ready"]))
    out.print(table)
    if st.spec.isolated:
        network = reg["network"]
        out.print(f"network {network['subnet']} (bridge {network['bridge']}, this machine "
                  f"{network['host_address']}); service addresses: "
                  + ", ".join(f"{n} {s['address']}" for n, s in reg["services"].items()), highlight=False)
    out.print(f"broker {reg['broker']['node']}: {_state(reg['broker']['state'])}", highlight=False)
    out.print(f"lease: held by {holder.describe()}" if holder else "lease: free (no command is changing the lab)",
              highlight=False)
    _print_alerts(st.alerts)
    raise typer.Exit(0 if healthy else 2)


def _ready(flag: bool) -> str:
    return "[green]yes[/]" if flag else "[red]no[/]"


def _print_alerts(alerts: list[dict[str, Any]] | None) -> None:
    if alerts is None:
        out.print("alerts: Prometheus does not answer")
        return
    firing = [a for a in alerts if a.get("state") == "firing"]
    pending = [a for a in alerts if a.get("state") == "pending"]
    if not firing and not pending:
        out.print("alerts: [green]none firing[/]")
        return
    table = Table(title="alerts", title_justify="left")
    for col in ("alert", "state", "labels", "since"):
        table.add_column(col)
    for a in firing + pending:
        labels = {k: v for k, v in a.get("labels", {}).items() if k != "alertname"}
        table.add_row(a.get("labels", {}).get("alertname", "?"), a.get("state", "?"),
                      ", ".join(f"{k}={v}" for k, v in sorted(labels.items())), str(a.get("activeAt", "")))
    out.print(table)


# --- scale -----------------------------------------------------------------------------------------------

@app.command(
    epilog="Examples:\n\n"
    "  chaoslab scale orders=3\n\n"
    "  chaoslab scale payments=4 notifications=2\n\n"
    "  chaoslab scale orders=1   (removes orders-2 and orders-3, gracefully)\n\n"
    "Only the named services' replicas are added or removed; nothing else restarts. Prometheus' "
    "file-based targets follow: leaving replicas stop being scraped before they stop, new ones are "
    "scraped once ready.",
)
def scale(
    settings: Annotated[list[str], typer.Argument(metavar="SVC=N...", help="New replica counts (0..20).")],
    state_dir: StateDir = STATE_DIR,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for new replicas to be ready.")]
    = control.DEFAULT_TIMEOUT_S,
    wait: Wait = 0.0,
) -> None:
    """Add or remove replicas of running services (under the lab's lease)."""
    with errors(), lease(state_dir, wait_s=wait, on_wait=waiting), progress() as bar:
        result = control.scale(state_dir, settings, timeout_s=timeout, reporter=RichReporter(bar))
    if result.added:
        out.print(f"added: {', '.join(result.added)}", highlight=False)
    if result.removed:
        out.print(f"removed: {', '.join(result.removed)}", highlight=False)
    if not result.added and not result.removed:
        out.print("nothing to change", highlight=False)
    out.print("replicas: " + ", ".join(f"{s}={n}" for s, n in result.replicas.items()), highlight=False)


# --- logs ------------------------------------------------------------------------------------------------

@app.command(
    epilog="Examples:\n\n"
    "  chaoslab logs orders          (every orders replica, each line prefixed with its name)\n\n"
    "  chaoslab logs orders-2 -f\n\n"
    "  chaoslab logs rabbitmq -n 200   (also: prometheus, alertmanager, webhook, supervisord)\n\n"
    "  chaoslab logs --trace 4bf92f3577b34da6a3ce929d0e0e4736   (one request, every service)\n\n"
    "The files themselves: STATE/logs/<name>.log.",
)
def logs(
    name: Annotated[str | None, typer.Argument(metavar="SVC|REPLICA",
                                               help="A service, a replica or a program.")] = None,
    state_dir: StateDir = STATE_DIR,
    follow_: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines (Ctrl-C stops).")]
    = False,
    lines: Annotated[int, typer.Option("--lines", "-n", help="Lines to show from the end of each log.")] = 50,
    trace: Annotated[str | None, typer.Option(
        "--trace", metavar="TRACE_ID", help="Only one request's lines, from every service, in time order.")] = None,
) -> None:
    """Show the logs of a service (all its replicas), a replica, or a lab program."""
    if trace is not None:
        from chaoslab.cli.traces import print_trace_logs

        raise typer.Exit(print_trace_logs(state_dir, trace))
    if name is None:
        err.print("name a service, a replica or a program (chaoslab logs orders), or give --trace TRACE_ID")
        raise typer.Exit(2)
    with errors():
        files = log_files(load_spec(state_dir), name)
    prefix = len(files) > 1
    for label, path in files:
        for line in tail(path, lines):
            _print_log(label, line, prefix)
    if follow_:
        try:
            for label, line in follow(files):
                _print_log(label, line, prefix)
        except KeyboardInterrupt:
            raise typer.Exit(0) from None


def _print_log(label: str, line: str, prefix: bool) -> None:
    sys.stdout.write(f"[{label}] {line}\n" if prefix else f"{line}\n")
    sys.stdout.flush()


# --- env -------------------------------------------------------------------------------------------------

@app.command(
    epilog="Examples:\n\n"
    "  chaoslab env                                        (show the overrides)\n\n"
    "  chaoslab env payments:PROVIDER_LATENCY_MS=200 payments:PROVIDER_CONCURRENCY=4\n\n"
    "  chaoslab env LOG_LEVEL=debug                        (every service)\n\n"
    "  chaoslab env payments:PROVIDER_LATENCY_MS=           (remove an override)\n\n"
    "Ports, replica names, the admin token and the shop admin account cannot be overridden.",
)
def env(
    items: Annotated[list[str] | None, typer.Argument(metavar="[SVC:]KEY=VALUE ...")] = None,
    state_dir: StateDir = STATE_DIR,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each restarted replica.")]
    = control.DEFAULT_TIMEOUT_S,
    wait: Wait = 0.0,
) -> None:
    """Show or change services' environment overrides; changed replicas restart one at a time (under the lab's
    lease)."""
    with errors():
        if not items:
            overrides = load_spec(state_dir).env
            table = Table("scope", "variable", "value", title="environment overrides")
            for scope, values in sorted(overrides.items()):
                for key, value in sorted(values.items()):
                    table.add_row("every service" if scope == "*" else scope, key, value)
            out.print(table if overrides else "no environment overrides")
            return
        with lease(state_dir, wait_s=wait, on_wait=waiting), progress() as bar:
            result = control.set_env(state_dir, items, timeout_s=timeout, reporter=RichReporter(bar))
    restarted = ", ".join(result.restarted) or "none (nothing changed)"
    out.print(f"[green]done[/]: restarted {restarted}", highlight=False)


# --- down ------------------------------------------------------------------------------------------------

@app.command(
    epilog="Examples:\n\n"
    "  chaoslab down\n\n"
    "  chaoslab down --state-dir /tmp/lab2\n\n"
    "The state dir stays (databases, logs, spans, alerts); remove it yourself for a fresh start.\n\n"
    "While another command holds the lab's lease (a gameday, a chaos run), down refuses and names it: stop that "
    "command (Ctrl-C rolls its faults back), or end both with --force.",
)
def down(
    state_dir: StateDir = STATE_DIR,
    force: Annotated[bool, typer.Option("--force", help="Stop the lab even while another command holds its "
                                                        "lease (that command then fails).")] = False,
    wait: Wait = 0.0,
) -> None:
    """Stop every program of the lab, then supervisord, and make sure no process of it is left."""
    with errors():
        if force or not LabPaths.of(state_dir).state.is_dir():
            result = control.down(state_dir)
        else:
            with lease(state_dir, wait_s=wait, on_wait=waiting):
                result = control.down(state_dir)
    if not result.was_running and not result.killed and not result.kernel:
        out.print(f"no lab runs in {Path(state_dir).resolve()}", highlight=False)
        return
    if result.stopped:
        out.print(f"stopped {len(result.stopped)} programs: {', '.join(result.stopped)}", highlight=False)
    if result.killed:
        out.print("ended leftover processes:\n" + "\n".join(result.killed), highlight=False)
    for kind, what in result.kernel.items():
        out.print(f"removed {kind}: {what}", highlight=False)
    out.print("[green]down[/]: no process of the lab is left")
