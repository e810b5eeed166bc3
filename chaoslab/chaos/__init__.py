"""The chaoslab Chaos Toolkit extension and the runner behind `chaoslab chaos` and `chaoslab faults`.

Experiments call `chaoslab.chaos.actions` and `chaoslab.chaos.probes` (python providers). Every activity is a
plain synchronous function with JSON-serialisable results, and starts from a handle on the lab
(`chaoslab.chaos.lab.Lab.of(configuration)`: its registry, found through the configuration key
`chaoslab_state_dir`, else $CHAOSLAB_STATE_DIR, else .chaoslab; its clients; its supervisord), so experiments
carry no ports.

Modules: lab (the handle), actions and probes (the extension, each with `__all__`), security (the security
faults' actions and probes: certificates and callers outside the call graph, with `__all__`), broker (AMQP from an
activity), crash (a kill through the replica's admin API, over once the replica is gone: compose), marks (when the
last fault went in, for the probes that measure from it), annotations (a control that posts each experiment to
Grafana); beside the extension, the runner behind `chaoslab chaos run`: runner (one `chaos run`, its load and
leftovers), verdict (a journal's verdict), report (its tables), experiments (finding and linting chaos/*.json);
and faults on a clock, without Chaos Toolkit: schedule (fault schedules, seeded random ones, their checks), injector
(a scheduled fault through the actions), scheduler (plays a schedule under the safeguard, undoing every fault however
it ends), seeds (the seed a run's random choices come from).
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
