"""Reading the files users write (experiments, plans): JSON or YAML, one loader, one kind of error.

Before, `chaos run` took a YAML experiment while `chaoslab chaos validate` and gameday plans refused it with
"not JSON: Expecting value: line 1 column 1 (char 0)". Now every reader goes through `load`: the format follows
the suffix (.json; .yaml or .yml), and a file that does not parse is a DocumentError naming the file, the line
and the column, in the same words whichever format it is.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from chaoslab.errors import DocumentError

JSON_SUFFIXES = (".json",)
YAML_SUFFIXES = (".yaml", ".yml")
SUFFIXES = JSON_SUFFIXES + YAML_SUFFIXES


def parse(text: str, source: str, *, yaml_format: bool) -> Any:
    """The data of a JSON or YAML text; DocumentError "source:line:column: what" when it does not parse."""
    if yaml_format:
        try:
            return yaml.safe_load(text)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
            raise DocumentError(f"{where}: not valid YAML: {exc.problem or exc.context}") from None
        except yaml.YAMLError as exc:
            raise DocumentError(f"{source}: not valid YAML: {exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DocumentError(f"{source}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}") from None


def load(path: str | Path) -> Any:
    """A JSON (.json) or YAML (.yaml, .yml) file's data; DocumentError when it cannot be read or parsed."""
    path = Path(path)
    if path.suffix not in SUFFIXES:
        raise DocumentError(f"{path}: not a JSON or YAML file (expected one of {', '.join(SUFFIXES)})")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DocumentError(f"cannot read {path}: {exc.strerror or exc}") from None
    return parse(text, str(path), yaml_format=path.suffix in YAML_SUFFIXES)


def load_mapping(path: str | Path, what: str) -> dict[str, Any]:
    """`load`, and the data must be a mapping (`what` says of what, for the error: "an experiment")."""
    data = load(path)
    if not isinstance(data, dict):
        raise DocumentError(f"{path}: {what} is a mapping (keys and values), not a {type(data).__name__}")
    return data
