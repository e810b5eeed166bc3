"""Load runs for the lab: `chaoslab load` (Locust scenarios with thresholds) and `chaoslab scale-test`.

The journeys, shapes, scenarios and the Prometheus exporter live in loadtests/ (plain Locust, also used by compose
and Kubernetes); this package starts Locust for them, shows the run, and judges it.
"""
