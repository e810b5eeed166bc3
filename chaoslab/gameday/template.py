# ruff: noqa: E501 - HTML, whose lines follow its markup rather than Python's width
"""The report's HTML template (Jinja2). One file with its style inline and no script, fetch or font: it opens
offline. Kept as a module rather than a data file so an installed chaoslab always has it."""

TEMPLATE = r"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>gameday {{ plan.name }}: {{ "PASSED" if passed else "FAILED" }}</title>
<style>
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#111827;margin:0;background:#f9fafb}
main{max-width:1260px;margin:0 auto;padding:18px 24px 60px}
h1{font-size:24px;margin:6px 0}h2{font-size:19px;margin:30px 0 8px;border-bottom:1px solid #e5e7eb;padding-bottom:4px}
h3{font-size:16px;margin:22px 0 6px}h4{font-size:14px;margin:14px 0 4px}
table{border-collapse:collapse;margin:6px 0 12px;background:#fff}th,td{border:1px solid #e5e7eb;padding:3px 8px;
text-align:left;vertical-align:top}th{background:#f3f4f6;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
.pass{color:#15803d;font-weight:600}.fail{color:#b91c1c;font-weight:700}.warn{color:#b45309;font-weight:700}
.badge{display:inline-block;padding:2px 10px;border-radius:12px;color:#fff;font-weight:700}
.badge.pass{background:#16a34a;color:#fff}.badge.fail{background:#dc2626;color:#fff}
.meta{color:#4b5563}.box{background:#fff;border:1px solid #e5e7eb;border-radius:6px;padding:8px 12px;margin:8px 0}
figure{margin:10px 0 18px;background:#fff;border:1px solid #e5e7eb;border-radius:6px;padding:8px}
figcaption{font-weight:600;margin-bottom:4px}svg{width:100%;height:auto;display:block}
.legend{display:flex;flex-wrap:wrap;gap:4px 14px;font-size:12px;margin-top:4px}
.swatch{display:inline-block;width:12px;height:3px;margin-right:4px;vertical-align:middle}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12px}
pre.waterfall{background:#111827;color:#e5e7eb;padding:8px;overflow-x:auto;border-radius:4px;line-height:1.25}
details{margin:4px 0}summary{cursor:pointer;color:#1d4ed8}
.fault-key{display:inline-block;width:12px;height:12px;background:#f59e0b;opacity:.35;vertical-align:middle}
.score{font-size:20px;font-weight:700}.history-charts{display:flex;flex-wrap:wrap;gap:8px}
figure.trend{width:310px;margin:4px 0}
</style></head><body><main>
<h1>gameday <code>{{ plan.name }}</code> <span class="badge {{ 'pass' if passed else 'fail' }}" id="overall"
 data-passed="{{ 'true' if passed else 'false' }}">{{ "PASSED" if passed else "FAILED" }}</span></h1>
<p class="meta">{{ plan.description }}</p>
<p class="meta">started {{ started|utc }} · {{ duration|clock }} ({{ duration }} s) · {{ counts.passed }} of {{ counts.total }}
 verdicts passed{% if counts.inconclusive %} · <span class="warn">{{ counts.inconclusive }} inconclusive</span>{% endif %}{% if interrupted %} · <span class="fail">interrupted</span>{% endif %} · plan <code>{{ plan.source }}</code>
 · lab <code>{{ lab.state_dir }}</code> (base port {{ lab.base_port }}{% if lab.started_by_gameday %}, started by the
 gameday in {{ lab.startup_s }} s{% endif %})</p>
{% for note in notes %}<p class="meta">{{ note }}</p>{% endfor %}

<h2 id="verdicts">Verdicts</h2>
<table id="verdict-table"><tr><th></th><th>suite</th><th>verdict</th><th>measured</th><th>bound</th><th>detail</th></tr>
{% for v in verdicts %}<tr class="verdict" data-id="{{ v.id }}" data-suite="{{ v.suite }}" data-name="{{ v.name }}"
 data-passed="{{ 'true' if v.passed else 'false' }}" data-status="{{ v.status }}">{{ v|mark }}
<td>{{ v.suite }}</td><td>{{ v.name }}</td><td class="num">{{ v|measured }}</td><td class="num">{{ v|bound }}</td>
<td>{{ v.detail }}{% if v.inconclusive %} <span class="warn">inconclusive: {{ v.inconclusive }}</span>{% endif %}</td></tr>
{% endfor %}</table>

{{ resilience_html|safe }}
<h2 id="noise">Noise</h2>
<p class="meta">What Alertmanager sent while each experiment ran (firing notifications, the groups they came in, pages),
against the plan's page budget; inhibitions as checked in Prometheus and at the receiver.</p>
<table id="noise-table"><tr><th>experiment</th><th>notifications</th><th>groups</th><th>pages</th><th>budget</th><th>paged</th><th>inhibitions</th></tr>
{% for e in experiments %}<tr data-name="{{ e.name }}"><td>{{ e.name }}</td>{% if e.noise %}<td class="num">{{ e.noise.notifications }}</td>
<td class="num">{{ e.noise.groups }}</td><td class="num">{{ e.noise.pages }}</td>
<td class="num">{{ e.page_budget if e.page_budget is not none else "-" }}</td><td>{{ e.noise.paged|join(", ") }}</td>
{% else %}<td colspan="5">not counted</td>{% endif %}
<td>{% for i in e.inhibitions %}{{ i.target }} by {{ i.source }}: {{ "held" if i.overlapped_s and not i.notified else
"FAILED" if i.notified else "nothing to inhibit" }}{% if not loop.last %}; {% endif %}{% endfor %}</td></tr>
{% endfor %}</table>

{% if coverage %}<h2 id="coverage">Detection coverage</h2>
<p class="meta">Every fault of the plan's coverage against every target, and the alerts each set off
(docs/detection.md says how to read it; the page of its own: <a href="{{ coverage.page }}">coverage.html</a>).</p>
<table id="coverage-matrix"><tr><th>fault</th><th>target</th><th>clients saw it</th><th>alerts</th><th></th></tr>
{% for c in coverage.cells %}<tr data-blind="{{ 'true' if c.blind else 'false' }}"><td>{{ c.fault }}</td><td>{{ c.target }}</td>
<td>{{ "yes" if c.degraded else "no" }}</td><td>{{ c.alerts|join(", ") or "-" }}</td><td class="{{ 'fail' if c.blind else '' }}">{{ "BLIND" if c.blind else "" }}</td></tr>
{% endfor %}</table>
<p>blind spots: {{ coverage.blind_spots|join(", ") or "none" }}; dead alerts: {{ coverage.dead_alerts|join(", ") or "none" }}</p>{% endif %}

<h2 id="timeline">Timeline</h2>
<p class="meta">Load phases, experiments, faults (injected → undone) and alerts (firing → resolved, as notified at the
lab's webhook receiver); a pale bar is still open at the end. The clock is minutes:seconds since the start.</p>
<figure>{{ timeline_svg|safe }}</figure>
<details><summary>every event ({{ events|length }})</summary><table id="events"><tr><th>at</th><th>kind</th><th>what</th></tr>
{% for ev in events %}<tr><td class="num">{{ (ev.at - started)|clock }}</td><td>{{ ev.kind }}</td><td>{{ ev.text }}</td></tr>
{% endfor %}</table></details>

<h2 id="charts">Dashboards over the run</h2>
<p class="meta">The key panels of the lab's Grafana dashboards, drawn from Prometheus range queries over the run (the
dashboards' own queries). <span class="fault-key"></span> fault windows.</p>
{% for chart in charts %}<figure class="chart-figure" data-points="{{ chart.points }}" data-title="{{ chart.title }}">
<figcaption>{{ chart.section }} · {{ chart.title }} <span class="meta">({{ chart.dashboard }})</span></figcaption>
{% if chart.error %}<p class="fail">{{ chart.error }}</p>{% endif %}
{{ chart.svg|safe }}
<div class="legend">{% for line in chart.lines %}<span><span class="swatch" style="background:{{ line.color }}"></span>{{ line.name }}</span>{% endfor %}
{% if not chart.lines %}<span class="fail">no data</span>{% endif %}</div>
<details><summary>queries</summary>{% for q in chart.exprs %}<pre>{{ q }}</pre>{% endfor %}</details></figure>
{% endfor %}

<h2 id="experiments">Experiments</h2>
{% for e in experiments %}<section class="experiment" id="exp-{{ e.name }}" data-name="{{ e.name }}"
 data-passed="{{ 'true' if e.passed else 'false' }}">
<h3>{{ loop.index }}. {{ e.name }} <span class="{{ 'pass' if e.passed else 'fail' }}">{{ "passed" if e.passed else "FAILED" }}</span></h3>
<p class="meta">{{ e.title }}{% if e.vars %} · vars {{ e.vars|tojson }}{% endif %}
{% if e.journal %} · <a href="{{ e.journal }}">journal.json</a> · <a href="{{ e.chaos_out }}">chaos.out</a>{% endif %}</p>
{% if e.error %}<p class="fail">{{ e.error }}</p>{% endif %}
{% if e.fault %}<p>fault: <b>{{ e.fault.injected_by }}</b> at {{ (e.fault.start - started)|clock }} → undone by
<b>{{ e.fault.undone_by }}</b> at {{ (e.fault.end - started)|clock }} ({{ "%.1f"|format(e.fault.end - e.fault.start) }} s)</p>{% endif %}
<table><tr><th></th><th>verdict</th><th>measured</th><th>bound</th><th>detail</th></tr>
{% for v in e.verdicts %}<tr>{{ v|mark }}<td>{{ v.name }}</td>
<td class="num">{{ v|measured }}</td><td class="num">{{ v|bound }}</td><td>{{ v.detail }}{% if v.inconclusive %}
<span class="warn">inconclusive: {{ v.inconclusive }}</span>{% endif %}</td></tr>{% endfor %}</table>
{% if e.impairments %}<h4 class="warn">The evidence was impaired</h4><ul>{% for i in e.impairments %}
<li class="warn">{{ i.what }}: {{ i.detail }} (verdicts resting on {{ i.affects }} are inconclusive)</li>{% endfor %}</ul>
{% endif %}
{% if e.journeys and (e.journeys.before or e.journeys.during) %}<h4>The same journey before and during the fault</h4>
<div class="journeys" style="display:flex;gap:1em;overflow-x:auto"><div><p class="meta">before</p>{{ e.journeys.before|safe }}</div>
<div><p class="meta">during</p>{{ e.journeys.during|safe }}</div></div>{% endif %}
{% if e.alerts %}<h4>Expected alerts</h4><table><tr><th>alert</th><th>notified</th><th>time-to-detect</th><th>the rule predicts</th><th>bound</th>
<th>fired in Prometheus</th><th>resolved</th><th>time-to-resolve</th><th>bound</th></tr>
{% for a in e.alerts %}<tr><td>{{ a.key }}</td><td>{{ a.received_at|clock_at(started) }}</td><td class="num">{{ a.time_to_detect_s|secs }}</td>
<td class="num">{% if a.predicted %}{{ "%.1f"|format(a.predicted.band[0]) }}-{{ "%.1f"|format(a.predicted.band[1]) }} s
({{ a.predicted.model }}){% else %}-{% endif %}</td>
<td class="num">≤ {{ a.bounds.max_time_to_detect_s|g }} s</td><td>{{ a.fired_at|clock_at(started) }}</td>
<td>{{ a.resolved_received_at|clock_at(started) }}</td><td class="num">{{ a.time_to_resolve_s|secs }}</td>
<td class="num">{% if a.bounds.max_time_to_resolve_s %}≤ {{ a.bounds.max_time_to_resolve_s|g }} s{% endif %}</td></tr>{% endfor %}</table>{% endif %}
{% if e.other_alerts %}<p class="meta">other alerts notified meanwhile: {{ e.other_alerts|join(", ") }}</p>{% endif %}
{% if e.still_firing_after_settle %}<p class="meta">still firing when the next step began: {{ e.still_firing_after_settle|join(", ") }}</p>{% endif %}
<h4>Recovery and what the clients saw</h4><table>
<tr><th>time-to-recover</th><td class="num">{{ e.recovery.seconds|secs if e.recovery else "-" }}</td><td>bound ≤ {{ e.max_time_to_recover_s|g }} s,
 from the fault's undoing until every target is up and the gateway's error ratio holds</td></tr>
{% if e.client %}<tr><th>client requests</th><td class="num">{{ e.client.requests }}</td><td>sent by Locust from {{ (e.client.start - started)|clock }}
 to {{ (e.client.end - started)|clock }}, {{ e.client.failures }} failed</td></tr>
<tr><th>client error ratio</th><td class="num">{{ e.client.error_ratio|pct }}</td><td>budget ≤ {{ e.client_budget.max_error_ratio|pct }}</td></tr>
<tr><th>client p50 / p95 / p99</th><td class="num">{{ e.client.p50_s|ms }} / {{ e.client.p95_s|ms }} / {{ e.client.p99_s|ms }}</td>
<td>the worst of Locust's rolling 10 s percentiles while the fault lasted</td></tr>{% endif %}
{% if e.audit %}<tr><th>data audit</th><td class="{{ 'pass' if e.audit.ok else 'fail' }}">{{ "ok" if e.audit.ok else "FAILED" }}</td>
<td>{{ e.audit.orders }} orders, {{ e.audit.payments }} payments, {{ e.audit.notifications }} notifications; lost:
 {{ e.audit.missing_payment + e.audit.missing_notification }}, duplicated: {{ e.audit.duplicate_payment + e.audit.duplicate_notification }},
 in flight {{ e.audit.in_flight }}, redeliveries dropped {{ e.audit.duplicate_deliveries_dropped }}</td></tr>{% endif %}
</table>
<h4>Slowest and failed requests during the fault</h4>
{% if not e.requests %}<p class="meta">no client request was traced in the window</p>{% endif %}
{% for r in e.requests %}<div class="box request" data-trace-id="{{ r.trace_id }}"><b>{{ r.kind }}</b> · <code>{{ r.trace_id }}</code> ·
{{ r.root }} · {{ r.duration_ms }} ms · {{ r.errors }} error span(s) · at {{ (r.start - started)|clock }}
<span class="meta">(chaoslab trace {{ r.trace_id }})</span>
{{ r.waterfall_html|safe }}
{% if r.log_lines %}<details><summary>{{ r.log_lines|length }} log line(s) with this trace id</summary><table>
<tr><th>time</th><th>replica</th><th>level</th><th>message</th></tr>{% for line in r.log_lines %}<tr><td>{{ line.time }}</td>
<td>{{ line.replica }}</td><td>{{ line.level }}</td><td>{{ line.message }}</td></tr>{% endfor %}</table></details>{% endif %}
</div>{% endfor %}
</section>{% endfor %}

<h2 id="load">Load (Locust)</h2>
{% for phase in load_phases %}<h3>{{ phase.name }} <span class="meta">({{ phase.scenario }})</span></h3>
{% if phase.error %}<p class="fail">{{ phase.error }}</p>{% endif %}
{% if phase.report %}<p><a href="{{ phase.report }}">Locust's HTML report</a> · <a href="{{ phase.dir }}">CSV files</a></p>{% endif %}
{% if phase.summary %}<table class="locust-stats"><tr><th>method</th><th>name</th><th>requests</th><th>failures</th><th>req/s</th>
<th>p50 ms</th><th>p95 ms</th><th>p99 ms</th><th>max ms</th></tr>
{% for row in phase.summary.entries + [phase.summary.total] %}<tr><td>{{ row.method }}</td><td>{{ row.name }}</td>
<td class="num">{{ row.requests }}</td><td class="num {{ 'fail' if row.failures else '' }}">{{ row.failures }}</td>
<td class="num">{{ "%.2f"|format(row.rps) }}</td><td class="num">{{ row.p50_ms }}</td><td class="num">{{ row.p95_ms }}</td>
<td class="num">{{ row.p99_ms }}</td><td class="num">{{ row.max_ms }}</td></tr>{% endfor %}</table>
{% if phase.summary.errors %}<details><summary>failures ({{ phase.summary.errors|length }} kinds)</summary><table>
<tr><th>count</th><th>request</th><th>error</th></tr>{% for err in phase.summary.errors %}<tr><td class="num">{{ err.occurrences }}</td>
<td>{{ err.method }} {{ err.name }}</td><td>{{ err.error }}</td></tr>{% endfor %}</table></details>{% endif %}
{% if phase.checks %}<details {% if not phase.passed %}open{% endif %}><summary>thresholds{% if phase.judged_on %} (judged on
{{ phase.judged_on }}){% endif %}</summary><table><tr><th>check</th><th>limit</th><th>observed</th><th></th></tr>
{% for c in phase.checks %}<tr><td>{{ c.what }}</td><td>{{ c.limit }}</td><td>{{ c.observed }}</td>
<td class="{{ 'pass' if c.ok else 'fail' }}">{{ "ok" if c.ok else "FAIL" }}</td></tr>{% endfor %}</table></details>{% endif %}
{% endif %}{% endfor %}

{% if scaling %}<h2 id="scaling">Scaling</h2>
{% if scaling.result %}<table><tr><th>replicas</th><th>users</th><th>orders/s at saturation</th><th>efficiency</th><th>p95 ms</th></tr>
{% for p in scaling.result.points %}<tr><td class="num">{{ p.replicas }}</td><td class="num">{{ p.users }}</td>
<td class="num">{{ "%.1f"|format(p.throughput) }}</td><td class="num">{{ "%.2f"|format(p.efficiency) }}</td>
<td class="num">{{ "%.0f"|format(p.p95_ms) }}</td></tr>{% endfor %}</table>{% endif %}
<p><a href="{{ scaling.rel_dir }}">scale-test results</a></p>{% endif %}

{% if annotations %}<h2 id="grafana">Grafana</h2><p>{{ annotations.posted }} fault window(s) posted as annotations to
{{ annotations.url }}{% if annotations.errors %}; errors: {{ annotations.errors|join("; ") }}{% endif %}</p>{% endif %}

<h2 id="files">Files</h2><p><a href="summary.json">summary.json</a> · <a href="junit.xml">junit.xml</a> ·
<a href="plan.yaml">plan.yaml</a> · chaos journals under <a href="chaos/">chaos/</a> · Locust under <a href="load/">load/</a></p>
</main></body></html>
"""

# The detection coverage matrix (chaoslab/gameday/coverage.py): a page of its own in the coverage run directory.
COVERAGE_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>chaoslab detection coverage</title>
<style>body{font:14px system-ui,sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;
padding:.2em .5em;text-align:center}th.alert{writing-mode:vertical-rl;transform:rotate(180deg)}.hit{background:#dcfce7}
.blind{background:#fee2e2;font-weight:700}.dead{color:#b91c1c}.meta{color:#555}</style></head><body>
<h1>Detection coverage <span class="{{ 'hit' if passed else 'blind' }}">{{ "PASSED" if passed else "FAILED" }}</span></h1>
<p class="meta">Every fault against every target it applies to; a mark where an alert fired for it. Blind spots (red): a
fault that must be detected and was not, or one clients saw that no alert saw. docs/detection.md says how to read it.</p>
<table id="matrix"><tr><th>fault</th><th>target</th><th>clients saw it</th>{% for a in catalogue %}<th class="alert">{{ a }}</th>
{% endfor %}</tr>{% for c in cells %}<tr class="{{ 'blind' if c.blind else '' }}" data-fault="{{ c.fault }}"
data-target="{{ c.target }}" data-blind="{{ 'true' if c.blind else 'false' }}"><td>{{ c.fault }}</td><td>{{ c.target }}</td>
<td>{{ "yes" if c.degraded else "no" }}</td>{% for a in catalogue %}{% set hit = c.alerts|select("match", a ~ " ")|list %}
<td class="{{ 'hit' if hit else '' }}" title="{{ hit|join(', ') }}">{{ "●" if hit else "" }}</td>{% endfor %}</tr>
{% endfor %}</table>
<h2>Blind spots</h2><ul id="blind">{% for b in blind_spots %}<li>{{ b }}</li>{% else %}<li>none</li>{% endfor %}</ul>
<h2>Dead alerts</h2><p class="meta">In the catalogue, fired by no fault of this matrix (a narrower matrix leaves more).</p>
<ul id="dead">{% for d in dead_alerts %}<li class="dead">{{ d }}</li>{% else %}<li>none</li>{% endfor %}</ul>
</body></html>
"""
