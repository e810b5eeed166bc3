"""Seeded random chaos and fault schedules (quick): the same seed and lab give the same faults, targets, replicas
and times, every time; the schedule keeps its promises (duration, concurrency, one fault per target, its targets
and kinds); each scheduled fault becomes the catalogue's action with its arguments; plans' overlapping faults are
checked before anything runs."""

from __future__ import annotations

import pytest

from chaoslab.chaos import injector
from chaoslab.chaos import schedule as s
from chaoslab.chaos.template import FAULTS
from chaoslab.gameday import combined
from chaoslab.gameday import plan as plans

pytestmark = pytest.mark.quick

LAB = {"gateway": 1, "auth": 1, "users": 1, "orders": 2, "payments": 3, "notifications": 1}


def test_the_same_seed_draws_the_same_schedule_three_times() -> None:
    options = s.RandomOptions(600, 42)
    first, second, third = (s.random_schedule(options, dict(LAB)) for _ in range(3))
    assert first == second == third and len(first) >= 5
    # what "the same" covers: kinds, targets, replicas, start times and durations
    assert [(p.kind, p.target, p.replica, p.at_s, p.duration_s) for p in first] == \
           [(p.kind, p.target, p.replica, p.at_s, p.duration_s) for p in third]


def test_another_seed_or_another_lab_draws_another_schedule() -> None:
    base = s.random_schedule(s.RandomOptions(600, 42), LAB)
    assert s.random_schedule(s.RandomOptions(600, 43), LAB) != base
    # the topology is an input: a lab without notifications cannot have it drawn (seed 42 draws it on LAB)
    assert any(p.target == "notifications" for p in base)
    assert s.random_schedule(s.RandomOptions(600, 42), {**LAB, "notifications": 0}) != base


def test_the_order_of_the_kinds_given_does_not_matter() -> None:
    one = s.random_schedule(s.RandomOptions(300, 9, ("kill", "latency", "pause")), LAB)
    other = s.random_schedule(s.RandomOptions(300, 9, ("pause", "kill", "latency")), LAB)
    assert one == other


@pytest.mark.parametrize("seed", range(20))
def test_a_random_schedule_keeps_its_promises(seed: int) -> None:
    options = s.RandomOptions(300, seed, max_concurrent=2, fault_s=(5, 40), gap_s=(3, 20), recovery_s=5)
    drawn = s.random_schedule(options, LAB)
    assert drawn and not s.problems(drawn, LAB, isolated=False)
    moments = sorted({p.at_s for p in drawn} | {p.end_s for p in drawn})
    for t in moments:
        acting = [p for p in drawn if p.at_s <= t < p.end_s]
        assert len(acting) <= 2, (t, acting)
        assert len({p.target for p in acting}) == len(acting)
    for p in drawn:
        assert p.at_s >= 0 and p.end_s <= 300 + 1e-6 and p.duration_s <= 40
        assert p.kind in s.DEFAULT_KINDS and not FAULTS[p.kind].isolated
        assert p.target != "gateway"  # the safeguard's own signal is never a target unless named
        if p.kind in s.ONE_REPLICA:
            assert 1 <= int(p.replica) <= LAB[p.target]
        else:
            assert p.replica == "all"
    for a, b in zip(drawn, drawn[1:], strict=False):
        if a.target == b.target:
            assert b.at_s >= a.end_s + 5  # the target rests between two faults


def test_targets_and_kinds_can_be_narrowed() -> None:
    drawn = s.random_schedule(s.RandomOptions(300, 1, ("latency", "broker"), ("payments", "broker")), LAB)
    assert {p.target for p in drawn} <= {"payments", "broker"} and {p.kind for p in drawn} <= {"latency", "broker"}


def test_bad_random_options_are_named() -> None:
    problems = s.option_problems(s.RandomOptions(0, 1, ("kil",), ("paymens",), 0, (10, 5), (1, 2)), LAB)
    text = "; ".join(problems)
    for expected in ("unknown fault kind(s) kil", "unknown target(s) paymens", "duration must be positive",
                     "--max-concurrent", "fault duration range"):
        assert expected in text


def test_a_schedule_this_lab_cannot_run_is_refused_with_why() -> None:
    drawn = [s.Planned("a", "stop", "payments", 0, 10), s.Planned("b", "latency", "payments", 5, 10),
             s.Planned("c", "kill", "orders", 0, 5, replica=4), s.Planned("d", "loss", "users", 0, 5),
             s.Planned("e", "latency", "users", 20, 5, params={"latncy_ms": 3})]
    text = "; ".join(s.problems(drawn, LAB, isolated=False))
    assert "a and b hit payments at the same time" in text
    assert "orders has 2 replica(s), not a replica 4" in text
    assert "d: loss acts below the application" in text
    assert "latency takes latency_ms, not latncy_ms" in text


@pytest.mark.parametrize("kind", sorted(FAULTS))
def test_every_kind_becomes_its_catalogue_action(kind: str) -> None:
    target = "broker" if not FAULTS[kind].service_target else "payments"
    planned = s.Planned("F", kind, target, 0, 12, 2 if kind in s.ONE_REPLICA else "all")
    args = injector.arguments(planned)
    if FAULTS[kind].service_target:
        assert target in args.values()
    if "ttl_s" in args:
        assert args["ttl_s"] == 12 + injector.TTL_MARGIN_S  # outlives its undo by the margin, not for ever
    assert not any(isinstance(v, str) and v.startswith("${") for v in args.values())
    if kind in s.ONE_REPLICA:
        assert args["replica"] == 2


def test_a_plan_of_overlapping_faults() -> None:
    plan = plans.parse({"name": "both", "seed": 5, "experiments": [{
        "name": "broker-and-payments",
        "faults": [{"kind": "broker", "duration_s": 20}, {"kind": "stop", "target": "payments", "at_s": 5,
                                                         "duration_s": 10, "name": "payments-down"}],
        "alerts": [{"name": "BrokerDown", "max_time_to_detect_s": 30, "fault": "broker-broker"},
                   {"name": "ServiceDown", "labels": {"service": "payments"}, "max_time_to_detect_s": 30,
                    "fault": "payments-down"}]}]})
    [entry] = plan.experiments
    assert plan.seed == 5 and [f.name for f in entry.faults] == ["broker-broker", "payments-down"]
    drawn = combined.schedule_of(entry, LAB, plan.seed)
    assert drawn == combined.schedule_of(entry, LAB, plan.seed)
    assert drawn[0].target == "broker" and drawn[1].at_s == 5


@pytest.mark.parametrize(("entry", "message"), [
    ({"experiment": "poison-message", "faults": [{"kind": "kill", "target": "payments", "duration_s": 3}]},
     "either `experiment`"),
    ({"faults": [{"kind": "stop", "target": "payments", "duration_s": 9},
                 {"kind": "kill", "target": "payments", "at_s": 3, "duration_s": 3}]}, "at the same time"),
    ({"faults": [{"kind": "explode", "target": "payments", "duration_s": 3}]}, "unknown fault kind 'explode'"),
    ({"faults": [{"kind": "kill", "target": "paymens", "duration_s": 3}]}, "no service 'paymens'"),
    ({"faults": [{"kind": "kill", "target": "payments", "duration_s": 3}],
      "alerts": [{"name": "ServiceDown", "max_time_to_detect_s": 9, "fault": "nope"}]}, "no fault 'nope'"),
    ({"faults": [{"kind": "kill", "target": "payments", "duration_s": 3}], "vars": {"x": 1}}, "vars: not for"),
])
def test_a_bad_entry_of_faults_is_refused_before_anything_runs(entry: dict[str, object], message: str) -> None:
    with pytest.raises(plans.PlanError, match=message):
        plans.parse({"name": "bad", "experiments": [entry]})


def test_an_alert_attributed_outside_an_entry_of_faults_is_refused() -> None:
    with pytest.raises(plans.PlanError, match="only an entry of `faults`"):
        plans.parse({"name": "bad", "experiments": [{"experiment": "poison-message", "alerts": [
            {"name": "DeadLetterQueueNotEmpty", "max_time_to_detect_s": 9, "fault": "x"}]}]})


def test_one_replica_at_random_is_drawn_from_the_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    """What `chaos run --seed` hands the extension: with CHAOSLAB_SEED the "one replica, at random" of every
    experiment is the same for the same seed, and seeds spread over the replicas."""
    from chaoslab.chaos import seeds
    from chaoslab.chaos.lab import select_replicas

    registry = {"services": {"payments": {"replicas": [{"name": f"payments-{i}"} for i in (1, 2, 3)]}}}
    picks = {}
    for seed in range(12):
        monkeypatch.setenv(seeds.ENV, str(seed))
        first = select_replicas(registry, "payments", None)
        assert all(select_replicas(registry, "payments", None) == first for _ in range(5))
        picks[seed] = first[0]["name"]
    assert set(picks.values()) == {"payments-1", "payments-2", "payments-3"}
    monkeypatch.setenv(seeds.ENV, "4")
    assert select_replicas(registry, "payments", None)[0]["name"] == picks[4]
