"""`chaoslab compare` on sets of runs (quick, from summary.json files and from a history): no regression between
two sets alike, a regression named (exit 1, JUnit failure) when the candidate is worse beyond the tolerance, and
every way the sets can be unusable refused with exit 2."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from chaoslab.history.figures import Value, run_level
from chaoslab.history.store import History, RunRecord
from support.lab import run_chaoslab

pytestmark = pytest.mark.quick


def write_set(folder: Path, p99s: list[float], ttrs: list[float], seed: int = 7, plan: str = "tiny") -> Path:
    for i, (p99, ttr) in enumerate(zip(p99s, ttrs, strict=True), start=1):
        run = folder / f"2026120{i}T000000Z-gameday-{plan}"
        (run / "load" / "baseline").mkdir(parents=True)
        (run / "load" / "baseline" / "summary.json").write_text('{"total": {}}')  # Locust's: not a gameday's
        values = [Value("kill", "client_p99_s", p99), Value("kill", "time_to_recover_s", ttr)]
        figures = values + run_level(values, 100.0)
        (run / "summary.json").write_text(json.dumps({
            "plan": {"name": plan}, "resilience": {"seed": seed, "commit": {"sha": "c0ffee" * 6},
                                                   "figures": [f.to_json() for f in figures]}}))
    return folder


def compare(*args: object) -> tuple[int, str, str]:
    done = run_chaoslab("compare", *args)
    return done.returncode, done.stdout, done.stderr


def test_two_alike_sets_show_no_regression(tmp_path: Path) -> None:
    base = write_set(tmp_path / "base", [0.31, 0.35, 0.29], [2.1, 3.0, 2.5])
    candidate = write_set(tmp_path / "candidate", [0.33, 0.30, 0.36], [2.8, 2.2, 2.6])
    code, out, err = compare(base, candidate, "--junit", tmp_path / "compare.xml")
    assert code == 0, out + err
    assert "no significant regression" in out and "client p99" in out and "3/3" in out
    suite = ET.parse(tmp_path / "compare.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "0" and int(suite.get("tests") or 0) >= 4


def test_a_slower_candidate_is_a_named_regression(tmp_path: Path) -> None:
    base = write_set(tmp_path / "base", [0.31, 0.35, 0.29], [2.1, 3.0, 2.5])
    candidate = write_set(tmp_path / "candidate", [1.31, 1.45, 1.38], [2.8, 2.2, 2.6])
    code, out, err = compare(base, candidate, "--junit", tmp_path / "compare.xml", "--json")
    assert code == 1, out + err
    assert "REGRESSION" in err and "client p99" in err
    data = json.loads(out)
    by_id = {(f["suite"], f["figure"]): f for f in data["figures"]}
    p99 = by_id[("run", "client_p99_s")]
    assert p99["verdict"] == "regression" and p99["interval"][0] > p99["tolerance"]
    assert by_id[("run", "time_to_recover_s")]["verdict"] == "no significant change"
    failures = [c for c in ET.parse(tmp_path / "compare.xml").getroot().iter("testcase") if c.find("failure")
                is not None]
    assert {c.get("name") for c in failures} == {"client p99"}


def test_a_worse_candidate_within_the_tolerance_passes(tmp_path: Path) -> None:
    base = write_set(tmp_path / "base", [0.31, 0.35, 0.29], [2.1, 3.0, 2.5])
    candidate = write_set(tmp_path / "candidate", [0.40, 0.41, 0.42], [2.8, 2.2, 2.6])
    code, out, _ = compare(base, candidate)
    assert code == 0 and "worse, within tolerance" in out
    code, _, err = compare(base, candidate, "--tolerance", "client_p99_s=0.02")
    assert code == 1 and "client p99" in err  # a tighter tolerance makes the same data a regression


def test_sets_from_the_history(tmp_path: Path) -> None:
    history = History.of(tmp_path)
    for set_id, p99s in (("base-set", [0.3, 0.32, 0.31]), ("slow-set", [0.9, 0.95, 1.0])):
        for i, p99 in enumerate(p99s, start=1):
            values = [Value("kill", "client_p99_s", p99)]
            history.add(RunRecord("gameday", "tiny", float(i), "passed", float(i) + 1, 100.0, "feed" * 10, False, 7,
                                  set_id, i, figures=values + run_level(values, 100.0)))
    code, out, err = compare("base-set", "slow-set", "--state-dir", tmp_path)
    assert code == 1 and "client p99" in err, out + err
    code, out, err = compare("base-set", "base-set", "--state-dir", tmp_path)
    assert code == 0, out + err


@pytest.mark.parametrize(("make", "args", "message"), [
    ("few", [], "no figure has 3 runs on both sides"),
    ("none", [], "neither a folder of runs nor"),
    ("ok", ["--tolerance", "p99=1"], "no figure 'p99'"),
    ("ok", ["--confidence", "95"], "--confidence must be between 0 and 1"),
    ("ok", ["--plan", "other"], "no gameday run with figures"),
    ("other-plan", [], "no figure in common"),
])
def test_sets_that_cannot_be_compared_exit_2(tmp_path: Path, make: str, args: list[str], message: str) -> None:
    base = write_set(tmp_path / "base", [0.3, 0.3, 0.3], [2.0, 2.0, 2.0])
    candidate: Path | str = tmp_path / "candidate"
    if make == "few":
        write_set(Path(candidate), [0.3, 0.4], [2.0, 2.0])
        base = write_set(tmp_path / "base2", [0.3, 0.3], [2.0, 2.0])
    elif make == "none":
        candidate = "no-such-set"
    elif make == "ok":
        write_set(Path(candidate), [0.3, 0.3, 0.3], [2.0, 2.0, 2.0])
    else:
        folder = Path(candidate)
        folder.mkdir()
        (folder / "summary.json").write_text(json.dumps({"plan": {"name": "other"}, "resilience": {
            "figures": [{"suite": "x", "figure": "client_p99_s", "value": 1.0}]}}))
    code, out, err = compare(base, candidate, "--state-dir", tmp_path / "state", *args)
    assert code == 2, out + err
    assert message in err and "Traceback" not in err
