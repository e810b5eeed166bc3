"""Reading a gameday's three artifacts back the way a CI or a person would: summary.json, junit.xml and
report.html, each reduced to {verdict id: passed}, plus the report's charts as drawn."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import Any


def summary_verdicts(run_dir: Path) -> dict[str, bool]:
    data = json.loads((run_dir / "summary.json").read_text())
    return {v["id"]: v["passed"] for v in data["verdicts"]}


def junit_verdicts(run_dir: Path) -> dict[str, bool]:
    root = ET.parse(run_dir / "junit.xml").getroot()
    found = {}
    for case in root.iter("testcase"):
        suite = case.attrib["classname"].removeprefix("gameday.")
        found[f"{suite}: {case.attrib['name']}"] = case.find("failure") is None
    return found


class _Report(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.verdicts: dict[str, bool] = {}
        self.overall: bool | None = None
        self.charts: list[dict[str, Any]] = []
        self.timeline_bars = -1

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        classes = a.get("class", "").split()
        if tag == "tr" and "verdict" in classes:
            self.verdicts[a["data-id"]] = a["data-passed"] == "true"
        elif tag == "span" and a.get("id") == "overall":
            self.overall = a["data-passed"] == "true"
        elif tag == "figure" and "chart-figure" in classes:
            self.charts.append({"title": a["data-title"], "points": int(a["data-points"]), "polylines": 0})
        elif tag == "svg" and "chart" in classes and self.charts:
            self.charts[-1].update(first=float(a["data-first"] or 0), last=float(a["data-last"] or 0),
                                   drawn=int(a["data-points"]))
        elif tag == "polyline" and self.charts:
            self.charts[-1]["polylines"] += 1
        elif tag == "svg" and "timeline" in classes:
            self.timeline_bars = int(a["data-bars"])


def read_report(run_dir: Path) -> _Report:
    parser = _Report()
    parser.feed((run_dir / "report.html").read_text())
    return parser


def report_verdicts(run_dir: Path) -> dict[str, bool]:
    return read_report(run_dir).verdicts
