"""Load runs for the lab: `chaoslab load` (Locust scenarios with thresholds), `chaoslab scale-test`, and the
background load of chaos experiments and gamedays.

The journeys, shapes, scenarios and the Prometheus exporter live in the loadtests package (plain Locust, also used
by compose and Kubernetes); this package starts Locust for them, shows and judges the run, measures scaling, and
runs load in the background.

- background.py   load beside an experiment or a gameday: Locust or the order stream
- orderstream.py  the built-in order stream: customers placing orders at a steady rate
- progress.py     the live view of a headless run, from the run's own Prometheus exporter
- report.py       the end of a run on the terminal: per-request, per-stage and threshold tables
- runner.py       starting Locust for a scenario (standalone or distributed), and its verdict
- scaletest.py    `chaoslab scale-test SERVICE`: does throughput grow with replicas?
- target.py       what a run aims at: the gateway (registry or --host) and where metrics go
"""
