"""Test machinery, importable from every test as `support.*` (pytest puts tests/ on sys.path: pyproject.toml).

- lab.py       real native labs: base ports, `chaoslab` as a user runs it, start/stop, nothing left behind
- procs.py     single service processes (`python -m services.<name>`) on ports of a test's own
- rabbit.py    a RabbitMQ node of a test's own
- prereqs.py   the machine's PostgreSQL (skip, or fail under CI=true)
- waiting.py   eventually(): the one wait loop of the tests
"""
