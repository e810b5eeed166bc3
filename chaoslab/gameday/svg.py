"""Inline SVG for the report: time-series charts with shaded fault windows, and the run's timeline.

Plain strings, no library and no script: the report must open offline in any browser, years from now.
Every chart says how many points it drew and from when to when (data-points, data-first, data-last), so a
test can tell a real chart from an empty placeholder.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape

PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777", "#4b5563",
           "#65a30d", "#7c3aed", "#0d9488")
WIDTH, HEIGHT = 960, 230
LEFT, RIGHT, TOP, BOTTOM = 64, 12, 14, 26
FAULT_FILL = "#f59e0b"


@dataclass
class Line:
    name: str
    points: list[tuple[float, float]]
    color: str = ""


@dataclass(frozen=True)
class Window:
    start: float
    end: float
    label: str


@dataclass
class Bar:
    lane: str
    start: float
    end: float | None  # None: still open at the end of the run
    color: str
    label: str = ""


@dataclass
class Lanes:
    start: float
    end: float
    bars: list[Bar] = field(default_factory=list)


def fmt(value: float, unit: str) -> str:
    if unit == "percentunit":
        return f"{value * 100:.3g}%"
    if unit == "s":
        return f"{value * 1000:.3g} ms" if abs(value) < 1 else f"{value:.3g} s"
    if unit in ("reqps", "ops"):
        return f"{value:.3g}/s"
    if abs(value) >= 1000:
        return f"{value / 1000:.3g}k"
    return f"{value:.3g}"


def clock(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60}:{seconds % 60:02d}"


def nice_step(span: float, ticks: int = 4) -> float:
    if span <= 0:
        return 1.0
    raw = span / ticks
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)


def time_step(span_s: float) -> float:
    return next((s for s in (5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600) if span_s / s <= 10), 7200)


def _x(t: float, start: float, end: float) -> float:
    return LEFT + (t - start) / max(end - start, 1e-9) * (WIDTH - LEFT - RIGHT)


def _segments(points: list[tuple[float, float]], gap_s: float) -> list[list[tuple[float, float]]]:
    """Split where samples are missing, so a gap shows as a gap and not as a straight line across it."""
    out: list[list[tuple[float, float]]] = []
    for point in points:
        if out and point[0] - out[-1][-1][0] <= gap_s:
            out[-1].append(point)
        else:
            out.append([point])
    return out


def chart(lines: list[Line], start: float, end: float, windows: list[Window], unit: str = "",
          y_min: float | None = 0.0, step_s: float = 2.0, title: str = "") -> str:
    values = [v for line in lines for _, v in line.points]
    low = min(values + ([y_min] if y_min is not None else [])) if values else 0.0
    high = max(values) if values else 1.0
    if high <= low:
        high = low + (abs(low) or 1.0)
    step = nice_step(high - low)
    low = math.floor(low / step) * step
    high = math.ceil(high / step) * step
    plot_h = HEIGHT - TOP - BOTTOM

    def y(v: float) -> float:
        return TOP + (1 - (v - low) / (high - low)) * plot_h

    stamps = [t for line in lines for t, _ in line.points]
    parts = [f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
             f'role="img" aria-label="{escape(title)}" data-points="{len(stamps)}" '
             f'data-first="{min(stamps) if stamps else ""}" data-last="{max(stamps) if stamps else ""}">']
    for i, w in enumerate(windows):
        x0, x1 = _x(max(w.start, start), start, end), _x(min(w.end, end), start, end)
        parts.append(f'<rect class="fault" x="{x0:.1f}" y="{TOP}" width="{max(x1 - x0, 2):.1f}" height="{plot_h}" '
                     f'fill="{FAULT_FILL}" fill-opacity="0.18"><title>{escape(w.label)}</title></rect>')
        # labels of neighbouring windows take turns at three heights so that they do not overwrite each other
        parts.append(f'<text x="{x0 + 2:.1f}" y="{TOP + 10 + (i % 3) * 11}" font-size="9" fill="#92400e">'
                     f'{escape(w.label)}</text>')
    tick = low
    while tick <= high + step / 2:
        yy = y(tick)
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#e5e7eb"/>'
                     f'<text x="{LEFT - 4}" y="{yy + 3:.1f}" font-size="10" text-anchor="end" fill="#4b5563">'
                     f'{escape(fmt(tick, unit))}</text>')
        tick += step
    every = time_step(end - start)
    t = 0.0
    while t <= end - start:
        xx = _x(start + t, start, end)
        parts.append(f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{TOP}" y2="{HEIGHT - BOTTOM}" stroke="#f3f4f6"/>'
                     f'<text x="{xx:.1f}" y="{HEIGHT - 8}" font-size="10" text-anchor="middle" fill="#4b5563">'
                     f'{clock(t)}</text>')
        t += every
    for i, line in enumerate(lines):
        color = line.color or PALETTE[i % len(PALETTE)]
        for segment in _segments(line.points, max(3 * step_s, 6.0)):
            coords = " ".join(f"{_x(t, start, end):.1f},{y(v):.1f}" for t, v in segment)
            if len(segment) == 1:
                cx, cy = coords.split(",")
                parts.append(f'<circle cx="{cx}" cy="{cy}" r="1.6" fill="{color}"/>')
            else:
                parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.4" points="{coords}" '
                             f'data-series="{escape(line.name)}"/>')
    parts.append(f'<rect x="{LEFT}" y="{TOP}" width="{WIDTH - LEFT - RIGHT}" height="{plot_h}" fill="none" '
                 f'stroke="#d1d5db"/></svg>')
    return "".join(parts)


LANE_H, LABEL_W = 18, 250
MAX_LABEL = 40  # characters of a lane's name; the whole name is the bar's tooltip


def timeline(lanes: Lanes) -> str:
    """One row per lane (load phases, experiments, faults, each alert), bars placed on the run's clock."""
    names: list[str] = []
    for bar in lanes.bars:
        if bar.lane not in names:
            names.append(bar.lane)
    height = TOP + LANE_H * len(names) + BOTTOM
    width = WIDTH + LABEL_W - LEFT

    def x(t: float) -> float:
        return LABEL_W + (t - lanes.start) / max(lanes.end - lanes.start, 1e-9) * (width - LABEL_W - RIGHT)

    parts = [f'<svg class="timeline" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
             f'data-bars="{len(lanes.bars)}">']
    for i, name in enumerate(names):
        yy = TOP + i * LANE_H
        short = name if len(name) <= MAX_LABEL else name[:MAX_LABEL - 1] + "…"
        parts.append(f'<text x="{LABEL_W - 6}" y="{yy + 12}" font-size="10" text-anchor="end" fill="#111827">'
                     f'<title>{escape(name)}</title>{escape(short)}</text><line x1="{LABEL_W}" x2="{width - RIGHT}" '
                     f'y1="{yy + LANE_H}" '
                     f'y2="{yy + LANE_H}" stroke="#f3f4f6"/>')
    every = time_step(lanes.end - lanes.start)
    t = 0.0
    while t <= lanes.end - lanes.start:
        xx = x(lanes.start + t)
        parts.append(f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{TOP}" y2="{height - BOTTOM}" stroke="#e5e7eb"/>'
                     f'<text x="{xx:.1f}" y="{height - 8}" font-size="10" text-anchor="middle" fill="#4b5563">'
                     f'{clock(t)}</text>')
        t += every
    for bar in lanes.bars:
        yy = TOP + names.index(bar.lane) * LANE_H + 3
        x0 = x(max(bar.start, lanes.start))
        x1 = x(min(bar.end if bar.end is not None else lanes.end, lanes.end))
        opacity = "0.45" if bar.end is None else "0.85"
        tip = f"{bar.label or bar.lane}: {clock(bar.start - lanes.start)}" + (
            f" to {clock(bar.end - lanes.start)}" if bar.end is not None else " (still open at the end)")
        parts.append(f'<rect x="{x0:.1f}" y="{yy}" width="{max(x1 - x0, 2.5):.1f}" height="{LANE_H - 6}" rx="2" '
                     f'fill="{bar.color}" fill-opacity="{opacity}"><title>{escape(tip)}</title></rect>')
    parts.append("</svg>")
    return "".join(parts)
