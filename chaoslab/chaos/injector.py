"""A scheduled fault (chaoslab.chaos.schedule.Planned) through the extension's own actions: the catalogue's action
with its arguments filled in, and the action that undoes it, the way an experiment written by `chaoslab chaos new`
calls them (chaoslab.chaos.template.FAULTS holds both).

Every in-service and kernel fault gets a TTL of its duration plus TTL_MARGIN_S: if the process that injected it
dies, the fault still ends by itself soon after it was due to. Undoing:
- a fault with an undo action: that action (clear_faults for the service, start_service, start_broker,
  resume_replicas);
- a fault below the application: its own kernel record is removed (not every fault of its kind, which another
  scheduled fault may still need);
- an instant fault (a SIGKILL): nothing to undo, but the killed replica must run again (supervisord restarts it);
  if it does not within RESTART_WAIT_S, it is started.
"""

from __future__ import annotations

from typing import Any

from chaoslab.chaos import actions
from chaoslab.chaos.schedule import BROKER, ONE_REPLICA, Planned, settings_of
from chaoslab.chaos.template import FAULTS
from chaoslab.errors import LabError

TTL_MARGIN_S = 30.0
RESTART_WAIT_S = 30.0


def _fill(value: Any, planned: Planned, settings: dict[str, Any]) -> Any:
    if isinstance(value, str):
        if value.startswith("${") and value.endswith("}"):
            return settings[value[2:-1]]
        return value.replace("{target}", planned.target)
    if isinstance(value, dict):
        return {k: _fill(v, planned, settings) for k, v in value.items()}
    return value


def arguments(planned: Planned) -> dict[str, Any]:
    """The injecting action's arguments (without the configuration)."""
    spec = FAULTS[planned.kind]
    settings = {**settings_of(planned.kind), **planned.params,
                "fault_ttl_s": round(planned.duration_s + TTL_MARGIN_S, 1)}
    args = dict(_fill(spec.arguments, planned, settings))
    if planned.kind in ONE_REPLICA or planned.replica != "all":
        args["replica"] = planned.replica
    return args


def inject(planned: Planned, configuration: dict[str, Any]) -> Any:
    """Inject the fault; the action's result (JSON for the report). Raises what the action raises."""
    func = getattr(actions, FAULTS[planned.kind].action)
    return func(**arguments(planned), configuration=configuration)


def undo(planned: Planned, injected: Any, configuration: dict[str, Any]) -> Any:
    """Undo the fault (see the module's docstring); the undoing action's result."""
    spec = FAULTS[planned.kind]
    if spec.isolated:
        from chaoslab.chaos.lab import Lab
        from chaoslab.kernel import store

        record_id = injected.get("fault") if isinstance(injected, dict) else None
        if record_id is None:
            raise LabError(f"{planned.name}: its injection named no kernel record to remove")
        removed = store.remove(Lab.of(configuration).isolated(spec.action), record_id)
        return {"ended": [record_id] if removed is not None else []}
    if spec.undo is None:
        return _restarted(planned, injected, configuration)
    func_name, args = spec.undo
    filled = {k: (v.replace("{target}", planned.target) if isinstance(v, str) else v) for k, v in args.items()}
    if not spec.service_target:
        filled = {k: v for k, v in filled.items() if v != BROKER}
    return getattr(actions, func_name)(**filled, configuration=configuration)


def _restarted(planned: Planned, injected: Any, configuration: dict[str, Any]) -> dict[str, Any]:
    from chaoslab.chaos.lab import Lab
    from chaoslab.lab import faults

    names = [str(item["name"]) for item in injected or [] if isinstance(item, dict) and "name" in item]
    lab = Lab.of(configuration)
    if lab.is_compose:
        return {"restarted": names, "by": "the restart policy"}
    sv = lab.supervisor("the restart check")

    def running() -> bool:
        return len(faults.running_programs(sv, names)) == len(names)

    try:
        waited = faults.wait_until(running, RESTART_WAIT_S, f"{', '.join(names)} running again", interval_s=0.5)
        return {"restarted": names, "by": "supervisord", "after_s": round(waited, 3)}
    except LabError:
        started = faults.start_programs(sv, names)
        return {"restarted": names, "by": "chaoslab (supervisord had not)", "started": started}
