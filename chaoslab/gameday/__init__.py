"""The gameday: the lab's main job (`chaoslab gameday --plan quick|full|FILE`).

A plan (plans/*.yaml) names a load scenario and experiments with their bounds; the gameday runs a baseline
load, then each experiment under load, and judges each one: hypothesis before, during and after; expected
alerts at the webhook with their time-to-detect and resolution; time-to-recover; the client's errors and
latency during the fault; the data audit; and, when asked, per-service scaling. It writes a run directory
with summary.json, junit.xml (one test case per verdict), the journals, Locust's reports and report.html.

Modules:

- alerts.py       alerts as the webhook saw them: each expected alert's arrival and resolution
- attribution.py  which fault caused which alert when several faults act at once
- budget.py       the share of the SLO period's error budget a fault window spent
- charts.py       the report's charts: the dashboards' key panels, from range queries over the run
- combined.py     a plan entry of overlapping faults (`faults:`); `chaos random` runs one
- console.py      what a person watching sees: phases, live activity, verdict tables
- coverage.py     detection coverage: every fault class x service, and the alerts each set off
- detection.py    the time-to-detect a rule promises, from the rule and the pipeline's timings
- evidence.py     the slowest and failed requests of a fault window, with their traces and logs
- experiment.py   one experiment: `chaos run` under load, then alerts, recovery, client view, audit
- grafana.py      fault windows as Grafana annotations, where a Grafana runs
- journal.py      what a gameday reads from a Chaos Toolkit journal: fault and activity times
- junit.py        junit.xml: one suite per part of the gameday, one test case per verdict
- loadphase.py    the load: a judged baseline, then one background run through the experiments
- measure.py      the measurements taken from Prometheus after each experiment
- noise.py        how much a fault made Alertmanager say, and whether inhibition held
- panels.py       dashboard panels as the gameday reads them, variables expanded for Prometheus
- pipeline.py     the telemetry pipeline watched during an experiment: was the evidence sound?
- plan.py         the plan's YAML format, its validation and the built-in plans
- report.py       report.html, from the JSON summary plus the charts, timeline and waterfalls
- resilience.py   a gameday in the history: figures, score, commit and seed; the report's section
- result.py       everything one gameday collected, its timeline and summary.json
- runner.py       a whole gameday: lab up, baseline, experiments, scaling, evidence, run directory
- scaling.py      the plan's scaling check: `chaoslab scale-test` in its own process, read back
- score.py        the resilience score: 0-100 from the verdicts, weighted per category
- svg.py          inline SVG: time series with shaded fault windows, and the run's timeline
- template.py     the report's HTML template (Jinja2; opens offline: no script, fetch or font)
- traceproof.py   what the traces prove: the resilience mechanisms engaged during the fault
- verdicts.py     the gameday's verdicts, one per thing a CI gates on

The lab comes from chaoslab.lab.control.ensure_running; Prometheus, the admin API and the
webhook through chaoslab.clients and chaoslab.lab.webhook; `chaoslab gameday` is in chaoslab.cli.gameday.
"""
