"""The native lab: every service as local processes under supervisord, beside the lab's own
RabbitMQ node, Prometheus, Alertmanager and a webhook receiver, all under one state dir.

Modules: ports (the port plan), paths (the state dir layout), spec (what a lab is made of, lab.json),
binaries and preflight (checks before anything starts), programs and render (the configs),
supervisor (supervisord and its XML-RPC API), probes (readiness), registry (status, registry.json),
procs (finding and ending a lab's processes), postgres (databases for a PostgreSQL template),
control (up, down, scale, status).
"""
