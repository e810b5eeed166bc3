"""The payments scaling check on a lab of its own (it scales payments and changes its environment, which the
shared lab must not see): throughput with 3 replicas at least 2.7 times that with one (efficiency >= 0.9).

The lab runs --tls off, the plain mode every other lab test leaves out: the orders of the scaling runs go end to end
over plain hops, and the security faults refuse such a lab with what to do instead."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from chaoslib.exceptions import ActivityFailed

from chaoslab.chaos.security import expire_certificate
from support.lab import replica_args, start_lab, stop_lab

pytestmark = [pytest.mark.lab, pytest.mark.slow]

Cli = Callable[..., subprocess.CompletedProcess[str]]


def test_payments_throughput_grows_with_its_replicas(chaoslab_cli: Cli, free_base_port: Callable[[], int],
                                                     tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    registry = start_lab(state_dir, free_base_port(), *replica_args(), "--tls", "off")
    try:
        assert registry["tls"]["mode"] == "off" and not (state_dir / "pki").exists(), registry.get("tls")
        with pytest.raises(ActivityFailed, match="runs --tls off: chaoslab down"):
            expire_certificate("payments", configuration={"chaoslab_state_dir": str(state_dir)})
        # 1 and 3 replicas: the efficiency is judged at the largest count; the middle point is the README's bench run's
        done = chaoslab_cli("scale-test", "payments", "--replicas", "1,3", "--duration", "40s",
                            "--run-dir", tmp_path / "run", "--state-dir", state_dir, timeout=420)
        # the lab is back where it was: one payments replica, no environment override left
        spec = json.loads((state_dir / "lab.json").read_text())
        assert spec["replicas"]["payments"] == 1
        assert not spec.get("env", {}).get("payments"), spec.get("env")
    finally:
        stop_lab(state_dir)
    result = json.loads((tmp_path / "run" / "scaling.json").read_text())
    table = json.dumps(result["points"], indent=1)
    assert result["capacity"]["per_replica"] == 8, result["capacity"]  # the slowed provider: 2 / 250 ms
    assert [p["replicas"] for p in result["points"]] == [1, 3]
    for point in result["points"]:
        assert point["saturated"], f"not driven to saturation:\n{table}"
        assert all(v > 0 for v in point["charged_by_replica"].values()), f"a replica got no charges:\n{table}"
    assert result["efficiency"] >= 0.9, f"efficiency {result['efficiency']} < 0.9:\n{table}\n{done.stdout}"
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    assert "efficiency with 3 replicas" in done.stdout and "8 charges/s per replica" in done.stdout
