"""The native lab: every service as local processes under supervisord, beside the lab's own
RabbitMQ node, Prometheus, Alertmanager and a webhook receiver, all under one state dir.

The isolated network (`up --network isolated`) is network, iptables, endpoints, disks and netpolicy; mutual TLS
(`up --tls on`, the default) is pki, certs, rotation and certfaults.

- audit.py          the data audit: every acknowledged order has one payment and one notification
- binaries.py       finding the programs a lab runs
- certfaults.py     certificate faults on a replica: expired, untrusted, impersonating
- certs.py          who holds a certificate, what it names, issuing it, the replicas' TLS environment
- compose.py        a compose stack's registry, found by DNS
- control.py        the lab's operations: up, down, scale, env, status, ensure_running
- disks.py          the isolated lab's size-limited data disks (a full disk is a real one)
- endpoints.py      service addresses over ready replicas (isolated lab); the kernel faults' TTL reaper
- faults.py         process faults through supervisord (kill, pause, stop), leftovers, restore
- iptables.py       the one module that runs iptables, for the isolated lab's chains
- lease.py          the lab's lease: one command at a time may change what a lab is doing
- lock.py           the lock file: one command at a time may change a lab's shape (up, scale, down)
- logs.py           reading a lab's logs, by program or by service
- netpolicy.py      default deny between the isolated lab's hosts, allow rules from the call graph
- network.py        the isolated network: namespaces, the bridge, addresses, the lab's chains
- paths.py          the state dir's layout and the run directories
- pki.py            the lab's CA and the SPIFFE certificates it signs (mutual TLS)
- ports.py          the port plan from one base port (services and offsets: services/contract.py)
- postgres.py       each service's PostgreSQL database, for a PostgreSQL URL template
- preflight.py      checks before a lab starts anything: fail fast, leave nothing running
- probes.py         readiness (ports, URLs, replicas, the broker) and poll(), the one way to wait
- procs.py          finding and ending every process of a lab
- programs.py       the programs supervisord runs: the infrastructure and every replica
- registry.py       the lab registry (status, registry.json) and finding a lab
- render.py         the configs: supervisord, Prometheus, Alertmanager, RabbitMQ
- rotation.py       the `certs` program: renewals at half-life, the certificate faults' TTL
- spec.py           what a lab is made of (base port, replicas, database template, secrets): lab.json
- status_server.py  the JSON status server of the lab's own programs (endpoints, certs): /health
- supervisor.py     supervisord: starting it, its XML-RPC API
- webhook.py        the alert receiver (every Alertmanager notification) and its client
"""
