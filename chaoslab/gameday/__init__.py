"""The gameday: the lab's main job (`chaoslab gameday --plan quick|full|FILE`).

A plan (plans/*.yaml) names a load scenario and experiments with their bounds; the gameday runs a baseline
load, then each experiment under load, and judges each one: hypothesis before, during and after; expected
alerts at the webhook with their time-to-detect and resolution; time-to-recover; the client's errors and
latency during the fault; the data audit; and, when asked, per-service scaling. It writes a run directory
with summary.json, junit.xml (one test case per verdict), the journals, Locust's reports and report.html.

Modules: plan (format, validation), runner (the whole run), experiment (one experiment and its measurements),
journal, alerts, measure, evidence (traces and logs), loadphase, scaling, verdicts, charts/svg/panels
(the report's charts from the dashboards' queries), report/template (HTML), junit, grafana (annotations),
console (progress). The lab comes from chaoslab.lab.control.ensure_running; Prometheus, the admin API and the
webhook through chaoslab.clients and chaoslab.lab.webhook; `chaoslab gameday` is in chaoslab.cli.gameday.
"""
