"""Which environment variables each service reads: from its code and from docs/design.md.

The services are written in parallel with the deployment files, so this is a union of two sources:
- the code: literal names in env_str/env_int/env_float/env_bool/os.environ/os.getenv calls, in services/kit/
  (read by every service) and in services/<name>/ (read by that one);
- the contract: the tables of docs/design.md ("Service environment (all services)" and "Service-specific").
A name set in a deployment file that is in neither is a typo or a variable nobody reads.
"""

from __future__ import annotations

import re
from functools import cache

from deploy_support import REPO, SERVICES

_CALL = re.compile(
    r"""\b(?:env_str|env_int|env_float|env_bool|os\.environ\.get|os\.getenv|os\.environ\.setdefault)"""
    r"""\(\s*["']([A-Z][A-Z0-9_]*)["']"""
)
_INDEX = re.compile(r"""os\.environ\[\s*["']([A-Z][A-Z0-9_]*)["']\s*\]""")
_NAME = re.compile(r"`([A-Z][A-Z0-9_]*)`")


def names_in_code(folder: str) -> set[str]:
    names: set[str] = set()
    for path in (REPO / "services" / folder).rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        names.update(_CALL.findall(text))
        names.update(_INDEX.findall(text))
    return names


def _table_rows(section: str) -> list[list[str]]:
    """Cells of the markdown table rows between a heading (or label line) and the next heading."""
    text = (REPO / "docs" / "design.md").read_text(encoding="utf-8")
    start = text.index(section)
    end = text.find("\n## ", start + len(section))
    rows = []
    for line in text[start:end if end != -1 else None].splitlines():
        if line.startswith("|") and not set(line) <= set("|- "):
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


@cache
def documented() -> tuple[frozenset[str], dict[str, frozenset[str]]]:
    """(names every service reads, {service: its own names}) from docs/design.md."""
    text_rows = _table_rows("## Service environment (all services)")
    common: set[str] = set()
    specific: dict[str, set[str]] = {s: set() for s in SERVICES}
    in_specific = False
    for cells in text_rows:
        if cells[0] == "service":  # header of the service-specific table
            in_specific = True
            continue
        if in_specific and cells[0] in specific:
            specific[cells[0]].update(_NAME.findall(cells[1]))
        elif not in_specific:
            common.update(_NAME.findall(cells[0]))
    return frozenset(common), {s: frozenset(n) for s, n in specific.items()}


@cache
def read_by(service: str) -> frozenset[str]:
    common_doc, specific_doc = documented()
    return frozenset(common_doc | specific_doc[service] | names_in_code("kit") | names_in_code(service))
