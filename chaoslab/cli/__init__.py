"""`chaoslab`: the command line. Each module holds a group of commands (a typer app whose commands are merged
into the root app here); options, consoles and the error-to-exit-code mapping are declared once:

- __main__.py        `python -m chaoslab.cli`: the same as the `chaoslab` command
- chaos.py           chaos list|validate|run|judge|new, faults
- compare.py         compare
- console.py         the consoles, errors to messages and exit codes, progress
- coverage.py        coverage
- demo.py            demo
- gameday.py         gameday (--repeat N hands over to gameday_repeat.py)
- gameday_repeat.py  gameday --repeat N --seed S: seeded repetitions of one plan, a set to compare
- history.py         history
- lab.py             up, status, scale, logs, env, down
- load.py            load, scale-test
- options.py         the shared options (--state-dir, --base-port, --runs-dir, --json, --wait)
- random_chaos.py    chaos random (seeded random chaos under load)
- topologies.py      topologies compare (microservices and the modular monolith side by side)
- traces.py          trace, traces (and logs --trace)

Library code (chaoslab.lab, .load, .chaos, .gameday, .clients) never imports this package.
"""

from __future__ import annotations

import typer

from chaoslab.cli import (
    chaos,
    compare,
    coverage,
    demo,
    gameday,
    history,
    lab,
    load,
    random_chaos,
    topologies,
    traces,
)

app = typer.Typer(
    name="chaoslab",
    help="chaoslab: a microservice shop, instrumented end to end, to load, break and check.\n\n"
    "The native lab runs every service as local processes under supervisord, beside its own RabbitMQ node, "
    "Prometheus and Alertmanager, all under one state dir and one range of ports.",
    epilog="Start with: chaoslab up; then chaoslab status; stop with chaoslab down. "
    "Every command that acts on a lab takes --state-dir (env CHAOSLAB_STATE_DIR, default .chaoslab).",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
_ = random_chaos  # registers `chaos random` on chaos.chaos_app
for group in (lab.app, traces.app, demo.app, load.app, chaos.app, gameday.app, history.app, compare.app,
              coverage.app, topologies.app):
    app.add_typer(group)


def main() -> None:
    app()
