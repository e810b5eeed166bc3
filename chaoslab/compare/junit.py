"""compare's JUnit file: one test case per figure compared (classname compare.<suite>), a failure for a
regression, skipped for a figure with too few runs; CI shows what got worse and by how much."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from chaoslab.compare.judge import REGRESSION, TOO_FEW, Comparison, FigureComparison
from chaoslab.history.figures import fmt


def describe(item: FigureComparison) -> str:
    if item.interval is None:
        return (f"{len(item.base)} base and {len(item.candidate)} candidate value(s): too few to judge "
                f"(medians {fmt(item.figure, item.base_median)} and {fmt(item.figure, item.candidate_median)})")
    i = item.interval
    return (f"median {fmt(item.figure, item.base_median)} -> {fmt(item.figure, item.candidate_median)}, difference "
            f"{fmt(item.figure, i.estimate)}, {i.confidence:.0%} interval [{fmt(item.figure, i.low)}, "
            f"{fmt(item.figure, i.high)}], tolerance {fmt(item.figure, item.tolerance)}: {item.verdict}")


def render(comparison: Comparison) -> str:
    cases = comparison.figures
    suite = ET.Element("testsuite", name=f"compare {comparison.base.spec} vs {comparison.candidate.spec}",
                       tests=str(len(cases)), failures=str(len(comparison.regressions)),
                       skipped=str(sum(1 for c in cases if c.verdict == TOO_FEW)), errors="0")
    properties = ET.SubElement(suite, "properties")
    for name, value in (("base", comparison.base.spec), ("candidate", comparison.candidate.spec),
                        ("confidence", f"{comparison.confidence:g}"), ("resamples", str(comparison.resamples))):
        ET.SubElement(properties, "property", name=name, value=value)
    for item in cases:
        case = ET.SubElement(suite, "testcase", classname=f"compare.{item.suite}", name=item.label)
        text = describe(item)
        if item.verdict == REGRESSION:
            ET.SubElement(case, "failure", message=text, type="Regression").text = text
        elif item.verdict == TOO_FEW:
            ET.SubElement(case, "skipped", message=text)
        else:
            ET.SubElement(case, "system-out").text = text
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
