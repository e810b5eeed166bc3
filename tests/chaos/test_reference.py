"""What users read about the extension is generated from it and stays true: docs/extension.md is fresh, every
function of `__all__` is in it, `chaos new` writes experiments that validate for every fault kind, and each
measurement counts from the moment its table says (the table is what the probes use)."""

from __future__ import annotations

import inspect
import re
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from chaoslab.chaos import actions, experiments, marks, probes, reference, runner, template
from chaoslab.chaos.experiments import EXTENSION_MODULES

pytestmark = pytest.mark.quick


def test_the_reference_is_generated_and_complete() -> None:
    assert reference.main(["--check"]) == 0, "run make generate"
    text = reference.DOCUMENT.read_text()
    for module in (actions, probes):
        for name in module.__all__:
            assert f"### `{name}`" in text
    assert text.count("```json") == len(actions.__all__) + len(probes.__all__)


def test_every_example_in_the_reference_is_a_valid_activity(tmp_path: Path) -> None:
    """The examples call each function with its required arguments: chaos validate checks the signature."""
    data = yaml.safe_load(template.render("reference-examples", "latency", "orders", "x.yaml"))
    data["method"] = [reference.example(m, n, getattr(__import__(m, fromlist=[n]), n), kind)
                      for m, kind in zip(EXTENSION_MODULES, ("action", "probe"), strict=True)
                      for n in __import__(m, fromlist=["__all__"]).__all__]
    path = tmp_path / "examples.yaml"
    path.write_text(yaml.safe_dump(data))
    done = subprocess.run([runner.chaos_bin(), "--no-version-check", "--no-log-file", "validate", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("fault", list(template.FAULTS))
def test_chaos_new_writes_an_experiment_that_validates(tmp_path: Path, fault: str) -> None:
    target = "orders"
    path = tmp_path / f"my-{fault}.yaml"
    path.write_text(template.render(path.stem, fault, target, path.name))
    assert experiments.lint(path) == []
    done = subprocess.run([runner.chaos_bin(), "--no-version-check", "--no-log-file", "validate", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    data = yaml.safe_load(path.read_text())
    assert ("isolated" in data["tags"]) == template.FAULTS[fault].isolated
    assert path.read_text().startswith(f"# my-{fault}: written by `chaoslab chaos new")


def test_chaos_new_refuses_what_it_does_not_know() -> None:
    with pytest.raises(ValueError, match="unknown fault 'lag'; one of: kill"):
        template.experiment("x", "lag", "orders")
    with pytest.raises(ValueError, match="unknown target 'order'"):
        template.experiment("x", "latency", "order")


def test_every_measurement_counts_from_the_moment_the_table_gives() -> None:
    t0 = time.time()
    marks.mark("fault", t0 - 30)
    marks.mark("recovery", t0 - 10)
    try:
        expected = {"fault": t0 - 30, "recovery": t0 - 10, "since": t0 - 30}
        for name, measurement in probes.MEASUREMENTS.items():
            assert probes._start(name, t0) == pytest.approx(expected[measurement.start]), name
        marks.mark("fault", t0 - 5)  # a fault after the last recovery: recovery measurements count from it
        assert probes._start("time_to_recover", t0) == pytest.approx(t0 - 5)
        assert probes._measured("time_to_detect", t0)["seconds"] == pytest.approx(5, abs=0.5)
    finally:
        marks._marks.clear()
    assert probes._start("time_to_recover", t0) == t0  # no marks: the probe's own start


def test_the_table_names_every_measurement_the_probes_return_and_only_those() -> None:
    source = inspect.getsource(probes)
    literal = set(re.findall(r'_measured\("([a-z_-]+)"', source))
    prefixes = set(re.findall(r'_measured\(f"([a-z_]+)\{', source))
    names = set(probes.MEASUREMENTS)
    assert literal <= names, literal - names
    covered = literal | {n for n in names if any(n.startswith(p) for p in prefixes)} | {
        "time_to_detect", "time_to_resolve", "time_to_pending", "time_to_notify", "time_to_notify_resolved"}
    assert names <= covered, names - covered
    for name, measurement in probes.MEASUREMENTS.items():
        for probe in measurement.probes:
            assert probe in probes.__all__, (name, probe)
            assert name.split("_")[-1] in inspect.getsource(getattr(probes, probe)) or name.startswith("time_to_")


def test_the_actions_that_mark_a_recovery_are_the_ones_the_reference_names() -> None:
    marking = {name for name in actions.__all__
               if 'marks.mark("recovery")' in inspect.getsource(getattr(actions, name))}
    assert marking == set(probes.RECOVERY_ACTIONS)
