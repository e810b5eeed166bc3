"""chaoslab's Locust load tests: journeys, load shapes, scenarios with thresholds, and a Prometheus exporter.

`locust -f loadtests/locustfile.py --host URL` runs them as plain Locust (compose, the k8s Job);
`chaoslab load SCENARIO` runs them against the native lab. This package depends on Locust and
prometheus-client only (not on the chaoslab package), so the load-generator image needs nothing else.

- exporter.py         Locust's client-side statistics for Prometheus (the locust_* metrics)
- journeys.py         the shop's users as Locust user classes
- locustfile.py       the load test plain Locust runs (native lab, compose, the k8s Job)
- recorder.py         per-stage throughput and latency of a shaped run's steady parts
- scenarios.py        the scenario catalogue: a shape, the journey mix, the thresholds it must meet
- shapes.py           load shapes as plain data: stages of target users until a run time
- summary.py          run summaries from Locust's statistics: the whole run and per-stage windows
- thresholds.py       a run's thresholds and their evaluation against its summary
- with_your_users.py  the scenarios, shapes, thresholds, exporter and summary for a user's own locustfile
"""
