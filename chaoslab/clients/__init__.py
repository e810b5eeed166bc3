"""One client per external API chaoslab talks to, shared by the CLI, the Chaos Toolkit extension, the gameday,
the load generators, the benchmarks and the tests:

- admin.py       every replica's admin API: faults, crash, audit (with the token); liveness, metrics
- prometheus.py  Prometheus' HTTP API: queries, alerts, targets, rules, configuration, exemplars
- shop.py        the shop's public API through the gateway: accounts, tokens, orders, notifications

The lab's own webhook receiver keeps its small client beside its server (chaoslab.lab.webhook.notifications).
"""
