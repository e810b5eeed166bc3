"""One client per external API chaoslab talks to, shared by the CLI, the Chaos Toolkit extension, the gameday,
the load generators, the benchmarks and the tests:

- prometheus.py  Prometheus' HTTP API: instant and range queries, alerts
- shop.py        the shop's public API through the gateway: accounts, tokens, orders, notifications
- admin.py       every replica's admin API: faults, crash, audit (fanned out over replicas)

The lab's own webhook receiver keeps its small client beside its server (chaoslab.lab.webhook.notifications).
"""
