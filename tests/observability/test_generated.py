"""Generated files are committed up to date: regenerate into a temporary dir and compare byte for byte."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaoslab.observability import generate

pytestmark = pytest.mark.quick


def test_generated_files_are_up_to_date(repo_root: Path, tmp_path: Path) -> None:
    written = generate.write(tmp_path)
    assert sorted(written) == sorted(generate.generated_files()), "write() skipped files in an empty dir"
    stale = [rel for rel in written if not (repo_root / rel).is_file()
             or (repo_root / rel).read_text() != (tmp_path / rel).read_text()]
    assert not stale, f"stale generated files (run `python -m chaoslab.observability.generate`): {stale}"


def test_check_mode_reports_a_stale_file(tmp_path: Path) -> None:
    generate.write(tmp_path)
    assert generate.main(["--root", str(tmp_path), "--check"]) == 0
    (tmp_path / "dashboards" / "overview.json").write_text("{}\n")
    assert generate.main(["--root", str(tmp_path), "--check"]) == 1
