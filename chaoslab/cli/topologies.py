"""`chaoslab topologies compare`: the shop as microservices and as a modular monolith, side by side."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.table import Table

from chaoslab.cli.console import err, errors, fail, out
from chaoslab.cli.options import RUNS_DIR, AsJson, RunsDir

app = typer.Typer()
topologies_app = typer.Typer(help="The shop's topologies: microservices (the default) and a modular monolith.",
                             no_args_is_help=True)
app.add_typer(topologies_app, name="topologies")


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


@topologies_app.command("compare", epilog="Examples:\n\n  chaoslab topologies compare    (2 replicas each, about "
                        "5 minutes)\n\n  chaoslab topologies compare --replicas 1 --seconds 5 --json > compare.json"
                        "\n\n  chaoslab topologies compare --plan quick    (and the quick gameday on both, about "
                        "10 minutes)"
                        "\n\nStarts and stops labs of its own (free base ports from 26000; mutual TLS off on both, "
                        "as the monolith runs; the rate limiter off): no lab of yours is touched. Writes "
                        "runs/<time>-topologies-compare/compare.json. Exit code: 0, or 2 for a bad command line.")
def compare(
    replicas: Annotated[int, typer.Option(help="Replicas of every service, and of the monolith (1-5).")] = 2,
    rate: Annotated[float, typer.Option(help="Requests a second of the fixed-rate scenarios.")] = 10.0,
    seconds: Annotated[float, typer.Option(help="Length of each load window, seconds.")] = 10.0,
    clients: Annotated[int, typer.Option(help="Customers, and concurrent clients at saturation.")] = 12,
    fault_s: Annotated[float, typer.Option(help="How long each fault on payments lasts, seconds.")] = 8.0,
    target_rps: Annotated[float, typer.Option(help="The rate the scaling scenario asks replicas and memory for, "
                                                   "orders/s (payments slowed to 8 charges/s a replica).")] = 40.0,
    plan: Annotated[str | None, typer.Option(help="Also run this gameday plan (quick, full or a file) on each "
                                                  "topology's lab and put its verdicts and score side by side; "
                                                  "experiments that do not apply to a topology are left out.")]
    = None,
    runs_dir: RunsDir = RUNS_DIR,
    as_json: AsJson = False,
) -> None:
    """Run the same scenarios on a microservices lab and on a monolith lab, one after the other on this machine,
    and print every figure side by side with the ratio monolith / microservices: start time, processes, ports and
    memory; p50/p99 at a fixed rate; throughput and CPU per order at saturation; the blast radius of stopping
    payments (which journeys failed, what share, for how long); a rolling restart of payments; the cost of one more
    replica when payments is the bottleneck; the alert rules and dashboards to operate.
    docs/monolith-or-microservices.md reads the numbers."""
    from chaoslab.lab.paths import new_run_dir
    from chaoslab.topologies.compare import BLAST_FAULTS
    from chaoslab.topologies.compare import compare as run

    with errors():
        if not 1 <= replicas <= 5:
            raise fail("--replicas: choose 1 to 5", code=2)
        if min(rate, seconds, fault_s, target_rps) <= 0 or clients < 1:
            raise fail("--rate, --seconds, --fault-s, --target-rps and --clients must be more than 0", code=2)
        run_dir = new_run_dir(runs_dir, "topologies", "compare")
        result = run(run_dir, replicas=replicas, rate=rate, seconds=seconds, clients=clients, fault_s=fault_s,
                     target_rps=target_rps, plan=plan, progress=lambda text: err.print(f"• {text}", highlight=False))
    if as_json:
        json.dump(result, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    table = Table(title=f"microservices and modular monolith, {replicas} replica(s) each", title_justify="left")
    for column, justify in (("figure", "left"), ("microservices", "right"), ("monolith", "right"),
                            ("monolith / micro", "right")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for row in result["figures"]:
        table.add_row(row["label"], _cell(row["microservices"]), _cell(row["monolith"]), _cell(row["ratio"]))
    out.print(table)
    for topology, res in result["topologies"].items():
        for fault, blast in res["blast_radius"].items():
            failed = ", ".join(f"{j} ({blast[j]['failed_share']:.0%} of its requests, {blast[j]['failing_s']} s)"
                               for j in blast["journeys_failed"])
            out.print(f"{topology}, payments {BLAST_FAULTS[fault]}: {failed or 'no journey failed'}",
                      highlight=False)
    out.print(f"written: {run_dir / 'compare.json'} and compare.md", highlight=False)
