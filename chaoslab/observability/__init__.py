"""Observability as code: the SLO catalogue (slos.py) and everything generated from it.

- alertmanager.py  Alertmanager configs (native lab: render(webhook_url))
- alerts.py        recording and alert rules built from the SLOs, per profile
- catalog.py       every expression shipped, for tests that run them against a real Prometheus
- dashboards/      Grafana dashboards (grafana-foundation-sdk) -> dashboards/*.json
- generate.py      `python -m chaoslab.observability.generate` rewrites every generated file
- profiles.py      rule profiles: the SRE workbook's windows (standard) or scaled down (native)
- rules.py         alerts/rules/<profile>.rules.yml
- slos.py          SLOs and every shared PromQL query (the one source of truth)
- templating.py    Grafana's query variables expanded, so a dashboard expression runs on Prometheus
- traces.py        native traces and logs (no Jaeger): one request's spans and lines, the waterfall
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
