"""The chaoslab Chaos Toolkit extension and the runner behind `chaoslab chaos` and `chaoslab faults`.

Experiments call `chaoslab.chaos.actions` and `chaoslab.chaos.probes` (python providers). Every activity is a
plain synchronous function with JSON-serialisable results, and finds the lab through its registry
(STATE/registry.json; STATE from the configuration key `chaoslab_state_dir`, else $CHAOSLAB_STATE_DIR, else
.chaoslab), so experiments carry no ports.

Modules: registry (finding the lab), admin (the replicas' fault API), procs (process faults through supervisord),
prom (Prometheus and alerts), shop (a client of the shop through the gateway), broker (AMQP), audit (the data
audit), actions and probes (the extension), verdict (a journal's verdict), runner and report (`chaoslab chaos`),
faults_cmd (`chaoslab faults`), orderstream (a built-in order stream), cli (the typer commands).
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
