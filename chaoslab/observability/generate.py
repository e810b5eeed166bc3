"""Regenerate every generated observability file: `python -m chaoslab.observability.generate`.

Writes alerts/rules/{standard,native}.rules.yml, alerts/alertmanager.yml and dashboards/*.json under the
repository root (or --root DIR). `--check` writes nothing and exits 1 when a committed file is stale.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from chaoslab.observability import alertmanager, rules
from chaoslab.observability.dashboards import dashboards
from chaoslab.observability.dashboards.render import to_json
from chaoslab.observability.profiles import PROFILES

REPO_ROOT = Path(__file__).resolve().parents[2]


def generated_files() -> dict[str, str]:
    """Relative path -> content of every generated file."""
    files = {rules.rule_path(name): rules.render(name) for name in PROFILES}
    files["alerts/alertmanager.yml"] = alertmanager.render_compose()
    for board in dashboards():
        files[f"dashboards/{board.filename}"] = to_json(board)
    return files


def write(root: Path) -> list[str]:
    """Write every generated file under `root`; returns the paths that changed."""
    changed = []
    for rel, text in generated_files().items():
        path = root / rel
        if path.exists() and path.read_text() == text:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        changed.append(rel)
    return changed


def stale(root: Path) -> list[str]:
    """Generated files under `root` that are missing or differ from what the code generates now."""
    return [rel for rel, text in generated_files().items()
            if not (root / rel).exists() or (root / rel).read_text() != text]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=REPO_ROOT, help="repository root to write under")
    parser.add_argument("--check", action="store_true", help="only report stale files (exit 1 if any)")
    args = parser.parse_args(argv)
    if args.check:
        outdated = stale(args.root)
        for rel in outdated:
            print(f"stale: {rel}")
        return 1 if outdated else 0
    for rel in write(args.root):
        print(f"wrote {rel}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
