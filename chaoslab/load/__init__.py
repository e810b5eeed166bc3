"""Load runs for the lab: `chaoslab load` (Locust scenarios with thresholds), `chaoslab scale-test`, and the
background load of chaos experiments and gamedays.

The journeys, shapes, scenarios and the Prometheus exporter live in the loadtests package (plain Locust, also used
by compose and Kubernetes); this package starts Locust for them (runner), shows the run (progress, report),
judges it, measures scaling (scaletest), and runs load in the background (background, orderstream: the built-in
order stream).
"""
