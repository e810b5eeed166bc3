"""JUnit XML: one test suite per part of the gameday (baseline, each experiment, scaling), one test case per
verdict, so any CI shows which verdict failed and why without reading the report."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import OrderedDict

from chaoslab.gameday.console import bound_text, measured_text
from chaoslab.gameday.verdicts import Verdict


def _message(v: Verdict) -> str:
    parts = []
    if v.measured is not None or v.bound is not None:
        parts.append(f"measured {measured_text(v)}" + (f", bound {bound_text(v)}" if v.bound is not None else ""))
    if v.detail:
        parts.append(v.detail)
    return "; ".join(parts) or "failed"


def render(name: str, verdicts: list[Verdict], durations: dict[str, float] | None = None,
           properties: dict[str, str] | None = None) -> str:
    suites: OrderedDict[str, list[Verdict]] = OrderedDict()
    for v in verdicts:
        suites.setdefault(v.suite, []).append(v)
    durations = durations or {}
    failed = sum(1 for v in verdicts if v.status == "failed")
    errors = sum(1 for v in verdicts if v.status == "inconclusive")
    root = ET.Element("testsuites", name=name, tests=str(len(verdicts)), failures=str(failed), errors=str(errors),
                      time=f"{sum(durations.values()):.3f}")
    for suite, items in suites.items():
        element = ET.SubElement(root, "testsuite", name=f"gameday.{suite}", tests=str(len(items)),
                                failures=str(sum(1 for v in items if v.status == "failed")),
                                errors=str(sum(1 for v in items if v.status == "inconclusive")), skipped="0",
                                time=f"{durations.get(suite, 0.0):.3f}")
        if properties:
            props = ET.SubElement(element, "properties")
            for key, value in properties.items():
                ET.SubElement(props, "property", name=key, value=value)
        for v in items:
            case = ET.SubElement(element, "testcase", classname=f"gameday.{suite}", name=v.name, time="0")
            if v.inconclusive:  # the evidence was impaired: an error of the run, not a failure of the system
                error = ET.SubElement(case, "error", message=f"inconclusive: {v.inconclusive}", type="Inconclusive")
                error.text = f"{v.id}: inconclusive: {v.inconclusive}"
            elif not v.passed:
                failure = ET.SubElement(case, "failure", message=_message(v), type="VerdictFailed")
                failure.text = f"{v.id}: {_message(v)}"
            else:
                ET.SubElement(case, "system-out").text = _message(v) if (v.measured is not None or v.detail) else ""
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
