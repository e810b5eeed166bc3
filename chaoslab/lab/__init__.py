"""The native lab: every service as local processes under supervisord, beside the lab's own
RabbitMQ node, Prometheus, Alertmanager and a webhook receiver, all under one state dir.

Modules: ports (the port plan, from services/contract.py), paths (the state dir layout, run directories), spec
(what a lab is made of, lab.json), binaries and preflight (checks before anything starts), programs and render
(the configs), supervisor (supervisord and its XML-RPC API), probes (readiness, poll), registry (status,
registry.json, find a lab), compose (a compose stack's registry, found by DNS), procs (finding and ending a lab's
processes), postgres (databases for a PostgreSQL template), faults (process faults, leftovers, restore), audit
(the data audit), webhook (the alert receiver and its client), logs, lock, control (up, down, scale, env,
status, ensure_running); the isolated network (`up --network isolated`): network (namespaces, the bridge,
addresses, the lab's chains), iptables (the one module that runs it), endpoints (service addresses balanced over
ready replicas; the kernel faults' TTL reaper), disks (each service's size-limited data disk), netpolicy (default
deny between the lab's hosts, allow rules from the call graph); mutual TLS (`up --tls on`, the default): pki (the
lab's CA and the certificates it signs), certs (who holds one, issuing them, the replicas' TLS environment),
rotation (the `certs` program: renewals at half-life, the certificate faults' TTL), certfaults (an expired,
untrusted or impersonating certificate on a replica).
"""
