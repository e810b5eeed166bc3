"""The chaoslab Chaos Toolkit extension and the runner behind `chaoslab chaos` and `chaoslab faults`.

Experiments call `chaoslab.chaos.actions` and `chaoslab.chaos.probes` (python providers). Every activity is a
plain synchronous function with JSON-serialisable results, and starts from a handle on the lab
(`chaoslab.chaos.lab.Lab.of(configuration)`: its registry, found through the configuration key
`chaoslab_state_dir`, else $CHAOSLAB_STATE_DIR, else .chaoslab; its clients; its supervisord), so experiments
carry no ports.

Modules: the extension (lab, actions, probes, security, broker, crash, marks, annotations); beside it the runner
behind `chaoslab chaos run` (runner, verdict, report, experiments, reference, template); and faults on a clock,
without Chaos Toolkit (schedule, injector, scheduler, seeds):

- actions.py      the extension's actions: every fault of the native catalogue and its undoing
- annotations.py  a Chaos Toolkit control that posts each experiment to Grafana as an annotation
- broker.py       AMQP from an activity: publish a message, count and purge a queue
- crash.py        a kill through the replica's admin API, over once the replica is gone (compose)
- experiments.py  the native experiments under chaos/: finding, describing, linting them
- injector.py     a scheduled fault through the extension's actions, and the action that undoes it
- lab.py          the handle every activity starts from (Lab.of): registry, clients, supervisord
- marks.py        when the last fault went in, for the probes that measure from it
- probes.py       the extension's probes: readiness, Prometheus, alerts, recovery, the shop, the audit
- reference.py    docs/extension.md, generated from the extension's actions and probes
- report.py       rich tables: a run's verdict, the experiment list, the faults across the replicas
- runner.py       `chaoslab chaos run`: one `chaos run` against a lab, its load and leftovers
- schedule.py     faults on a clock: fault schedules, seeded random ones, their checks
- scheduler.py    plays a schedule under the safeguard, undoing every fault however it ends
- security.py     the security faults' actions and probes: certificates, callers off the call graph
- seeds.py        a run's seed and the seeds derived from it for each random choice
- template.py     `chaoslab chaos new`: a commented experiment to start from
- verdict.py      the verdict of a `chaos run`, from its journal alone
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
EXTENSION_NAME = "chaoslab"


def discover(discover_system: bool = True) -> dict[str, Any]:
    """What `chaos discover` reports: every action and probe of the extension (and nothing of the system:
    the lab's shape lives in its registry, not on this machine)."""
    from chaoslib.discovery.discover import discover_actions, discover_probes, initialize_discovery_result

    discovery = initialize_discovery_result(EXTENSION_NAME, __version__, "chaoslab")
    discovery["activities"].extend(discover_actions("chaoslab.chaos.actions"))
    discovery["activities"].extend(discover_probes("chaoslab.chaos.probes"))
    return discovery


__all__ = ["discover", "__version__"]
