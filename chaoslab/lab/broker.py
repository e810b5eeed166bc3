"""The lab's RabbitMQ node from outside: rabbitmqctl with the node's name and HOME (its Erlang cookie)."""

from __future__ import annotations

import os
import subprocess

from chaoslab.lab.binaries import find_binaries
from chaoslab.lab.programs import rabbitmq_env
from chaoslab.lab.spec import LabSpec


def rabbitmqctl(spec: LabSpec, *args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run `rabbitmqctl -n NODE ARGS` against the lab's node, e.g. rabbitmqctl(spec, "list_queues", "name",
    "messages"). The node's environment (HOME with its cookie, ports) is the one the lab runs it with."""
    env = {**os.environ, **rabbitmq_env(spec)}
    return subprocess.run(
        [str(find_binaries().rabbitmqctl), "-n", spec.node_name, "-q", *args],
        env=env, capture_output=True, text=True, timeout=timeout_s, check=False,
    )
