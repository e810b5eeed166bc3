"""`chaoslab topologies compare`, short, for real: a microservices lab and a monolith lab one after the other, the
same scenarios on both, and every figure of the side-by-side result present and telling the topologies apart where
they must differ (processes, ports, memory, the blast radius of stopping payments, what one more replica costs)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from chaoslab.topologies.compare import FIGURES

# `beside`: its labs are its own and what it asserts compares one topology with the other on the same machine in
# the same run, so scripts/test.sh runs it in stage 1 (after the container test) rather than among the lab tests
# whose time bounds want the machine to themselves
pytestmark = [pytest.mark.lab, pytest.mark.slow, pytest.mark.beside]

Cli = Callable[..., subprocess.CompletedProcess[str]]


def test_a_short_comparison_reports_every_figure_for_both_topologies(chaoslab_cli: Cli, tmp_path: Path) -> None:
    done = chaoslab_cli("topologies", "compare", "--replicas", "1", "--seconds", "3", "--rate", "8", "--clients", "6",
                        "--fault-s", "3", "--json", "--runs-dir", tmp_path / "runs", timeout=600)
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    result = json.loads(done.stdout)
    assert (Path(result["run_dir"]) / "compare.json").exists()
    rows = {row["figure"]: row for row in result["figures"]}
    assert set(rows) == {path for path, _, _ in FIGURES}
    for row in rows.values():  # every figure measured on both
        assert row["microservices"] is not None and row["monolith"] is not None, row
    micro, mono = result["topologies"]["microservices"], result["topologies"]["monolith"]
    table = json.dumps(result["figures"], indent=1)

    assert (micro["start"]["processes"], mono["start"]["processes"]) == (6, 1), table
    assert micro["start"]["ports"] == 12 and mono["start"]["ports"] == 7, table  # public + admin per module
    assert mono["start"]["pss_mb"] < micro["start"]["pss_mb"], table
    for res in (micro, mono):
        assert res["fixed_rate"]["errors"] == 0 and res["saturation"]["errors"] == 0, res
        assert res["saturation"]["throughput_rps"] > 0 and res["saturation"]["cpu_ms_per_order"] > 0
    # payments stopped: among services only the journey that needs it fails; in the monolith, every journey
    assert micro["blast_radius"]["stop"]["journeys_failed"] == ["order"], micro["blast_radius"]["stop"]
    assert mono["blast_radius"]["stop"]["journeys_failed"] == ["catalogue", "profile", "order", "notifications"], \
        mono["blast_radius"]["stop"]
    # a fault inside payments' own calls stays with the journey that needs payments, in both topologies
    for res in (micro, mono):
        assert res["blast_radius"]["errors"]["journeys_failed"] == ["order"], res["blast_radius"]["errors"]
    # a killed payments replica: whatever the services lose, the monolith loses at least that
    assert set(micro["blast_radius"]["kill"]["journeys_failed"]) <= {"order"}, micro["blast_radius"]["kill"]
    assert set(micro["blast_radius"]["kill"]["journeys_failed"]) <= set(mono["blast_radius"]["kill"]["journeys_failed"])
    assert (Path(result["run_dir"]) / "compare.md").read_text().count("\n| ") == len(FIGURES) + 2
    assert micro["rolling_restart"]["programs"] == ["payments-1"]
    assert mono["rolling_restart"]["programs"] == ["monolith-1"]
    assert "catalogue" not in micro["rolling_restart"]["journeys_failed"]  # no other journey needs payments
    # payments the bottleneck: one more replica adds capacity in both, a whole monolith's memory in one
    for res in (micro, mono):
        assert res["scaling"]["processes_added"] == 1 and res["scaling"]["throughput_gain_rps"] > 0, res["scaling"]
        assert res["scaling"]["replicas_for_target"] >= 2
    assert mono["scaling"]["memory_added_mb"] > micro["scaling"]["memory_added_mb"], table
    assert rows["operate.alert_rules"]["ratio"] == 1.0 and rows["operate.dashboards"]["ratio"] == 1.0
