"""Observability as code: the SLO catalogue (slos.py) and everything generated from it.

- slos.py          SLOs and every shared PromQL query (the one source of truth)
- alerts.py        recording and alert rules built from it, per profile (profiles.py)
- rules.py         alerts/rules/<profile>.rules.yml
- alertmanager.py  Alertmanager configs (native lab: render(webhook_url))
- dashboards/      Grafana dashboards (grafana-foundation-sdk) -> dashboards/*.json
- catalog.py       every expression above, for tests that run them against a real Prometheus
- generate.py      `python -m chaoslab.observability.generate` rewrites every generated file
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chaoslab.observability.catalog import Expression


def all_expressions() -> list[Expression]:
    """Every rule, panel, variable and annotation expression with its expected-empty reason (or None).

    Imported lazily: the lab imports this package for alertmanager.render() and should not pay for the
    dashboard SDK.
    """
    from chaoslab.observability.catalog import all_expressions as _all

    return _all()


__all__ = ["all_expressions"]
