"""Small charts of a figure over runs: an inline SVG for the report (no script, opens offline, like every chart
of chaoslab.gameday.svg) and a sparkline for the terminal.

The x axis is the run, not the clock: runs of a plan come in bursts (a set of repetitions in minutes, then nothing
for a day), and a time axis would squash each burst into a line."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from chaoslab.history.figures import FIGURES, fmt

WIDTH, HEIGHT = 300, 90
LEFT, RIGHT, TOP, BOTTOM = 48, 8, 16, 16
BARS = "▁▂▃▄▅▆▇█"
COLOR, CURRENT = "#2563eb", "#dc2626"

Point = tuple[int | None, float | None, bool]  # (run id, value, is the current run)


def sparkline(values: Sequence[float | None]) -> str:
    """One character per run, from ▁ (the lowest) to █ (the highest); a gap for a run without the figure."""
    known = [v for v in values if v is not None]
    if not known:
        return ""
    low, high = min(known), max(known)
    span = high - low
    return "".join(" " if v is None else BARS[0 if span == 0 else min(len(BARS) - 1,
                                                                        int((v - low) / span * len(BARS)))]
                   for v in values)


def trend_figure(figure: str, points: Sequence[Point]) -> str:
    """A <figure> with the chart of one figure over runs (data-points: how many runs have it)."""
    spec = FIGURES[figure]
    known = [(i, v, cur) for i, (_, v, cur) in enumerate(points) if v is not None]
    caption = f"{spec.label} ({'lower' if spec.lower_is_better else 'higher'} is better)"
    if not known:
        return (f'<figure class="trend" data-figure="{figure}" data-points="0"><figcaption>{escape(caption)}'
                '</figcaption><p class="meta">no run has it</p></figure>')
    values = [v for _, v, _ in known]
    low, high = min(values + [0.0]), max(values)
    if high <= low:
        high = low + (abs(low) or 1.0)
    n = max(1, len(points) - 1)

    def x(i: int) -> float:
        return LEFT + i / n * (WIDTH - LEFT - RIGHT) if len(points) > 1 else (LEFT + WIDTH - RIGHT) / 2

    def y(v: float) -> float:
        return TOP + (1 - (v - low) / (high - low)) * (HEIGHT - TOP - BOTTOM)

    parts = [f'<svg class="trend" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
             f'aria-label="{escape(caption)}">',
             f'<text x="{LEFT - 4}" y="{y(high) + 3:.1f}" font-size="9" text-anchor="end">{escape(fmt(figure, high))}'
             f'</text><text x="{LEFT - 4}" y="{y(low) + 3:.1f}" font-size="9" text-anchor="end">'
             f'{escape(fmt(figure, low))}</text>',
             f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(low):.1f}" y2="{y(low):.1f}" stroke="#d1d5db"/>']
    if len(known) > 1:
        coords = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v, _ in known)
        parts.append(f'<polyline fill="none" stroke="{COLOR}" stroke-width="1.4" points="{coords}"/>')
    for i, v, current in known:
        run_id = points[i][0]
        parts.append(f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="{3.2 if current else 2}" '
                     f'fill="{CURRENT if current else COLOR}"><title>run #{run_id}: {escape(fmt(figure, v))}'
                     f'{" (this run)" if current else ""}</title></circle>')
    parts.append(f'<text x="{LEFT}" y="{HEIGHT - 3}" font-size="9">oldest</text><text x="{WIDTH - RIGHT}" '
                 f'y="{HEIGHT - 3}" font-size="9" text-anchor="end">this run</text></svg>')
    return (f'<figure class="trend" data-figure="{figure}" data-points="{len(known)}"><figcaption>'
            f'{escape(caption)}</figcaption>{"".join(parts)}</figure>')
