"""The isolated network's plan and rules, computed without privileges (quick): addresses from the base port, names
that carry it, kube-proxy-style service chains for a set of ready replicas, and the clear refusals of the isolated
mode and of its experiments where it cannot run."""

from __future__ import annotations

import ipaddress
import json
import re
from pathlib import Path

import pytest
from chaoslib.exceptions import ActivityFailed

from chaoslab.chaos import actions
from chaoslab.chaos.runner import check_network
from chaoslab.errors import LabError
from chaoslab.lab import endpoints
from chaoslab.lab.network import NetPlan
from chaoslab.lab.paths import repo_root
from chaoslab.lab.preflight import isolated_requirements
from chaoslab.lab.registry import build_registry, write_registry
from chaoslab.lab.spec import LabSpec

pytestmark = pytest.mark.quick


def test_every_base_port_has_its_own_subnet_and_names_that_carry_it() -> None:
    plan = NetPlan(18000)
    assert str(plan.subnet) == "10.70.80.0/24" and plan.host_address == "10.70.80.1"
    assert plan.broker_address == "10.70.80.2"
    assert plan.replica_address("gateway", 1) == "10.70.80.10"
    assert plan.replica_address("notifications", 20) == "10.70.80.129"
    assert plan.service_address("payments") == "10.70.80.204"
    assert (plan.bridge, plan.veth("orders-2"), plan.netns("orders-2")) == ("cl18000br", "cl18000h71",
                                                                            "chaoslab-18000-orders-2")
    assert plan.chain == "CHAOSLAB-18000" and plan.is_fault_chain("CHAOSLAB-18000-F12")
    assert not plan.is_fault_chain("CHAOSLAB-18000-F") and not plan.is_fault_chain("CHAOSLAB-18000-ROUTED")
    every = [plan.replica_address(s, n) for s in ("gateway", "auth", "users", "orders", "payments", "notifications")
             for n in range(1, 21)]
    assert len(set(every)) == 120 and not {plan.host_address, plan.broker_address} & set(every)
    # interface names fit IFNAMSIZ on the highest base port, and no two bases share a subnet
    highest = NetPlan(65235)
    assert len(highest.veth("notifications-20")) <= 15 and len(highest.bridge) <= 15
    subnets = {NetPlan(b).subnet for b in range(1024, 65236, 300)}
    assert len(subnets) == len(range(1024, 65236, 300))
    assert all(ipaddress.ip_network(s).is_private for s in subnets)


def test_service_chains_balance_over_the_ready_replicas_like_kube_proxy(tmp_path: Path) -> None:
    spec = LabSpec(tmp_path, 18000, network="isolated")
    nat, filter_ = endpoints.rules(spec, {"payments": ["payments-1", "payments-2", "payments-3"],
                                          "orders": ["orders-1"]})
    payments = nat["CHAOSLAB-18000-S4"]
    assert [re.search(r"--probability (\S+)", r).group(1) if "statistic" in r else None for r in payments] == \
        ["0.33333", "0.50000", None]  # 1/3, then 1/2 of the rest, then the last: an equal share each
    assert [r.rsplit(" ", 1)[1] for r in payments] == ["10.70.80.90:18004", "10.70.80.91:18004", "10.70.80.92:18004"]
    assert nat["CHAOSLAB-18000"][4] == "-d 10.70.80.204/32 -p tcp -m tcp --dport 18004 -j CHAOSLAB-18000-S4"
    refused = filter_["CHAOSLAB-18000-NOEP"]
    # every service without a ready replica is refused at once (a reset), like a Service without endpoints
    assert len(refused) == 4 and all(r.endswith("-j REJECT --reject-with tcp-reset") for r in refused)
    assert not any("10.70.80.204" in r or "10.70.80.203" in r for r in refused)


def test_the_isolated_mode_refuses_without_privileges_and_says_how() -> None:
    missing = isolated_requirements(euid=1000, capabilities=0)
    text = "\n".join(str(m) for m in missing)
    assert "root, or CAP_NET_ADMIN and CAP_SYS_ADMIN" in text and "sudo" in text and "--network loopback" in text
    both = (1 << 12) | (1 << 21)
    assert not any("CAP_NET_ADMIN" in str(m) for m in isolated_requirements(euid=1000, capabilities=both))


def _loopback_lab(tmp_path: Path) -> LabSpec:
    spec = LabSpec(tmp_path / "state", 18000)
    spec.paths.make_dirs()
    spec.save()
    write_registry(spec, build_registry(spec, [], probe=False))
    return spec


def test_isolated_experiments_and_faults_refuse_a_loopback_lab_clearly(tmp_path: Path) -> None:
    spec = _loopback_lab(tmp_path)
    tagged = [p for p in sorted((repo_root() / "chaos").glob("*.json"))
              if "isolated" in json.loads(p.read_text()).get("tags", [])]
    assert len(tagged) == 7
    for path in tagged:
        with pytest.raises(LabError) as refused:
            check_network(path, spec.paths.state)
        assert "needs an isolated lab" in refused.value.message and "--network isolated" in str(refused.value)
        assert refused.value.exit_code == 2
    check_network(repo_root() / "chaos" / "broker-outage.json", spec.paths.state)  # loopback experiments run
    with pytest.raises(ActivityFailed, match="needs an isolated lab .* runs --network loopback"):
        actions.blackhole("payments", source="orders", configuration={"chaoslab_state_dir": str(spec.paths.state)})
