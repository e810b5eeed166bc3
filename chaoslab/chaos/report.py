"""Rich tables for people: a run's verdict, the experiment list, and the faults across the replicas."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from chaoslab.chaos.experiments import Summary
from chaoslab.chaos.verdict import Verdict

PHASE_TITLE = {"before": "steady state before", "during": "steady state during", "method": "method",
               "after": "steady state after", "rollback": "rollback"}


def _mark(ok: bool) -> str:
    return "[green]✔[/]" if ok else "[bold red]✘[/]"


def verdict_table(verdict: Verdict) -> Table:
    table = Table(title=f"verdict: {verdict.title}", title_justify="left")
    for col in ("phase", "activity", "status", "s", "detail"):
        table.add_column(col, overflow="fold")
    for step in verdict.steps:
        seconds = f"{step.seconds:.1f}" if step.seconds is not None else ""
        table.add_row(PHASE_TITLE.get(step.phase, step.phase), f"{step.kind} {step.name}",
                      f"{_mark(step.ok)} {step.status}", seconds, step.detail if not step.ok else "")
    return table


def measurements_table(verdict: Verdict) -> Table | None:
    if not verdict.measurements:
        return None
    table = Table(title="measurements", title_justify="left")
    for col in ("measure", "seconds", "of", "activity"):
        table.add_column(col)
    for item in verdict.measurements:
        of = item.get("alert") or item.get("service") or item.get("queue") or item.get("upstream") or ""
        table.add_row(str(item["measure"]), f"{item['seconds']:.1f}", str(of), str(item.get("activity", "")))
    return table


def print_verdict(console: Console, verdict: Verdict, *, chaos_exit_code: int | None = None,
                  load_summary: dict[str, Any] | None = None, run_dir: str | None = None) -> None:
    console.print(verdict_table(verdict))
    measures = measurements_table(verdict)
    if measures is not None:
        console.print(measures)
    if load_summary:
        parts = [f"{load_summary['requests']} requests" if "requests" in load_summary else "",
                 f"statuses {load_summary['statuses']}" if "statuses" in load_summary else "",
                 f"error ratio {load_summary['error_ratio']}" if "error_ratio" in load_summary else "",
                 f"p99 {load_summary['p99_s']} s" if "p99_s" in load_summary else "",
                 f"report {load_summary['report']}" if "report" in load_summary else ""]
        console.print(f"load ({load_summary.get('engine', '?')}): " + ", ".join(p for p in parts if p),
                      highlight=False)
    for failure in verdict.failures:
        console.print(f"[red]✘[/] {failure}", highlight=False)
    note = f" (chaos run exited {chaos_exit_code})" if chaos_exit_code is not None else ""
    where = f"  journal: {run_dir}/journal.json" if run_dir else ""
    if verdict.passed:
        console.print(f"[bold green]PASSED[/]: status {verdict.status}{note}{where}", highlight=False)
    else:
        console.print(f"[bold red]FAILED[/]: status {verdict.status}, deviated {verdict.deviated}{note}{where}",
                      highlight=False)


def experiments_table(items: list[Summary]) -> Table:
    table = Table(title="native experiments (chaos/)", title_justify="left")
    for col in ("name", "title", "tags"):
        table.add_column(col, overflow="fold")
    for item in items:
        table.add_row(item.name, item.title, ", ".join(item.tags))
    return table


def faults_table(listed: list[dict[str, Any]], procs: dict[str, list[str]] | None = None) -> Table:
    table = Table(title="active faults", title_justify="left")
    for col in ("replica", "id", "kind", "percent", "target", "latency / status", "expires in"):
        table.add_column(col)
    procs = procs or {}
    for name in procs.get("paused", []):
        table.add_row(name, "", "[yellow]paused (SIGSTOP)[/]", "", "the process", "", "never (no TTL)")
    for name in procs.get("stopped", []):
        table.add_row(name, "", "[yellow]stopped[/]", "", "the process", "", "never (no TTL)")
    for entry in listed:
        if "error" in entry and entry["replica"] in procs.get("stopped", []) + procs.get("paused", []):
            continue  # said above: a stopped or paused replica's admin API cannot answer
        if "error" in entry:
            table.add_row(entry["replica"], "", f"[yellow]unreachable ({entry['error']})[/]", "", "", "", "")
            continue
        for fault in entry.get("faults", []):
            target = fault.get("route") or (f"→ {fault['upstream']}" if fault.get("upstream") else "all requests")
            if fault["kind"] == "latency":
                effect = f"{fault['latency_ms']:g} ± {fault['jitter_ms']:g} ms"
            elif fault["kind"] == "error":
                effect = str(fault["status"])
            else:
                effect = ""
            table.add_row(entry["replica"], fault["id"], fault["kind"], f"{fault['percent']:g}%", target, effect,
                          f"{fault['remaining_s']:.0f} s")
    return table


def kernel_table(held: dict[str, Any]) -> Table:
    """An isolated lab's kernel faults and what the kernel holds for them (chaoslab.kernel.inventory)."""
    table = Table(title="faults below the application (the kernel)", title_justify="left")
    for col in ("what", "name", "detail", "expires in"):
        table.add_column(col)
    for fault in held["faults"]:
        target = fault["target"]
        edge = f"{target['source']} -> {target['target']}" if target.get("source") else target["target"]
        params = ", ".join(f"{k}={v}" for k, v in fault["params"].items() if v not in (None, 0))
        table.add_row(f"fault {fault['kind']}", fault["id"], f"{edge} {params}".strip(), f"{fault['ttl_left_s']:.0f} s")
    for rule in held["rules"]:
        table.add_row("iptables rule", rule["chain"], f"{rule['rule'][:90]} ({rule['packets']} packets)", "")
    for qdisc in held["qdiscs"]:
        table.add_row("qdisc", f"{qdisc['netns'] or 'host'}:{qdisc['link']}",
                      f"{qdisc['kind']} {qdisc['bytes']} bytes, {qdisc['overlimits']} overlimits", "")
    for path in held["cgroups"]:
        table.add_row("cgroup", path, "", "")
    for mount in held["mounts"]:
        table.add_row("mount", mount["mount"], f"{mount['free_bytes'] // 1024} KiB free of "
                      f"{mount['size_bytes'] // 1024} KiB" + (f"; filled by {', '.join(mount['fillers'])}"
                                                               if mount["fillers"] else ""), "")
    for worker in held["workers"]:
        table.add_row("worker", str(worker["pid"]), worker["command"][:90], "")
    for replica, spec in held["clocks"].items():
        table.add_row("clock", replica, f"libfaketime {spec}", "")
    return table
