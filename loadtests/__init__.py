"""chaoslab's Locust load tests: journeys, load shapes, scenarios with thresholds, and a Prometheus exporter.

`locust -f loadtests/locustfile.py --host URL` runs them as plain Locust (compose, the k8s Job);
`chaoslab load SCENARIO` runs them against the native lab. This package depends on Locust and
prometheus-client only (not on the chaoslab package), so the load-generator image needs nothing else.
"""
