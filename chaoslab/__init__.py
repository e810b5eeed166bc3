"""chaoslab: an observability and chaos-testing lab for microservices.

Each package's docstring lists its own modules the same way (docs/design.md, "Layout", lists them all).

- chaos/          the Chaos Toolkit extension, the runner behind `chaoslab chaos`, faults on a clock
- cli/            the commands; shared options, consoles and errors-to-exit-codes declared once
- clients/        one client per external API: Prometheus, the shop, the replicas' admin API
- compare/        `chaoslab compare`: two sets of runs, figure by figure
- documents.py    reading the files users write (experiments, plans): JSON or YAML, one loader
- errors.py       one error hierarchy: ChaoslabError (message, hint, details, exit code) and its kinds
- gameday/        the gameday: plans, the run, measurements, verdicts, the report
- history/        the run history (STATE/history.sqlite): figures, commits, trends
- kernel/         faults below the application for an isolated lab, and their attestations
- lab/            the native lab: processes under supervisord, its isolated network, its PKI
- load/           Locust runs, scale-test, the background load of experiments and gamedays
- observability/  the SLO catalogue and everything generated from it; native traces
- topologies/     `chaoslab topologies compare`: the shop as microservices and as a modular monolith, side by side
"""

from __future__ import annotations

from typing import Any


def discover(discover_system: bool = True) -> dict[str, Any]:
    """`chaos discover chaoslab` imports the distribution's top-level package and calls its discover(): the
    Chaos Toolkit extension itself lives in chaoslab.chaos (imported here only when asked, so that importing
    chaoslab stays free of Chaos Toolkit)."""
    from chaoslab.chaos import discover as discover_extension

    return discover_extension(discover_system)
