"""The live view of a headless run, read from the run's own Prometheus exporter (the numbers Prometheus sees).

On a terminal it is a rich Live panel refreshed every second; elsewhere (CI, pytest) a plain line every
PLAIN_EVERY_S seconds, so logs stay readable.
"""

from __future__ import annotations

import urllib.request
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

PLAIN_EVERY_S = 5.0
SHOWN_NAMES = 8


@dataclass
class Sample:
    users: float = 0.0
    rps: float = 0.0
    fps: float = 0.0
    requests: float = 0.0
    failures: float = 0.0
    p95_s: dict[str, float] = field(default_factory=dict)  # per request name, "Aggregated" included
    p99_s: dict[str, float] = field(default_factory=dict)


def parse(text: str) -> Sample:
    sample = Sample()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "locust_users":
                sample.users = s.value
            elif s.name == "locust_requests_per_second":
                sample.rps = s.value
            elif s.name == "locust_failures_per_second":
                sample.fps = s.value
            elif s.name == "locust_requests_total":
                sample.requests += s.value
            elif s.name == "locust_failures_total":
                sample.failures += s.value
            elif s.name == "locust_response_time_seconds":
                q = s.labels.get("quantile")
                if q == "0.95":
                    sample.p95_s[s.labels["name"]] = s.value
                elif q == "0.99":
                    sample.p99_s[s.labels["name"]] = s.value
    return sample


def scrape(url: str, timeout_s: float = 0.5) -> Sample | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return parse(response.read().decode())
    except (OSError, ValueError):
        return None  # not up yet, or between runs


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f}"


class LiveView:
    def __init__(self, console: Console, title: str, duration_s: float | None, metrics_url: str) -> None:
        self.console = console
        self.title = title
        self.duration_s = duration_s
        self.metrics_url = metrics_url
        self.sample: Sample | None = None
        self._live: Live | None = None
        self._last_plain = -PLAIN_EVERY_S
        self._bar = Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                             TextColumn("of {task.fields[planned]}"), console=console)
        planned = f"{duration_s:.0f} s" if duration_s else "until Ctrl-C"
        self._task = self._bar.add_task(title, total=duration_s or None, planned=planned)

    def __enter__(self) -> LiveView:
        if self.console.is_terminal:
            self._live = Live(self._render(), console=self.console, refresh_per_second=2, transient=True)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)

    def tick(self, elapsed_s: float) -> None:
        self.sample = scrape(self.metrics_url) or self.sample
        self._bar.update(self._task, completed=min(elapsed_s, self.duration_s or elapsed_s))
        if self._live is not None:
            self._live.update(self._render())
        elif elapsed_s - self._last_plain >= PLAIN_EVERY_S:
            self._last_plain = elapsed_s
            self.console.print(self._plain(elapsed_s), highlight=False)

    def _plain(self, elapsed_s: float) -> str:
        s = self.sample or Sample()
        return (f"{self.title} {elapsed_s:5.0f}s  users {s.users:.0f}  {s.rps:.1f} req/s  {s.fps:.1f} fail/s  "
                f"p95 {_ms(s.p95_s.get('Aggregated'))} ms  requests {s.requests:.0f} ({s.failures:.0f} failed)")

    def _render(self) -> Group:
        s = self.sample or Sample()
        head = Table.grid(padding=(0, 3))
        for _ in range(5):
            head.add_column()
        head.add_row(f"users [bold]{s.users:.0f}[/]", f"[bold]{s.rps:.1f}[/] req/s",
                     f"[{'red' if s.fps else 'green'}]{s.fps:.1f}[/] failures/s",
                     f"requests {s.requests:.0f}", f"failed {s.failures:.0f}")
        names = Table(box=None, padding=(0, 2), show_edge=False)
        names.add_column("request (last 10 s)")
        names.add_column("p95 ms", justify="right")
        names.add_column("p99 ms", justify="right")
        for name in sorted(s.p95_s, key=lambda n: (n == "Aggregated", n))[-SHOWN_NAMES:]:
            names.add_row(escape(name), _ms(s.p95_s.get(name)), _ms(s.p99_s.get(name)))
        return Group(self._bar, head, names)
