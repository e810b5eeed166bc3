"""A reader for the subset of Grafana Alloy's configuration syntax that compose/alloy/config.alloy uses.

No Alloy binary can be installed here, so the test reads the file's structure itself: blocks
(`name "label" { ... }` and unlabelled nested blocks such as `rule { ... }` or `stage.json { ... }`) and
attributes (`name = expression`, the expression kept as text). The test then compares that structure with
the arguments and blocks documented for each component.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_TOKEN = re.compile(
    r"""(?P<ws>[ \t\r]+)|(?P<nl>\n)|(?P<comment>//[^\n]*|/\*.*?\*/)"""
    r"""|(?P<string>"(?:\\.|[^"\\])*"|`[^`]*`)|(?P<ident>[A-Za-z_][A-Za-z0-9_.]*)"""
    r"""|(?P<number>-?\d+(?:\.\d+)?)|(?P<punct>[{}\[\](),=:+\-*/<>!&|%])""",
    re.S,
)


@dataclass
class Block:
    name: str
    label: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    blocks: list[Block] = field(default_factory=list)


def tokenize(text: str) -> list[tuple[str, str, int]]:
    tokens, pos, line = [], 0, 1
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise ValueError(f"line {line}: cannot read {text[pos:pos + 20]!r}")
        kind, value = match.lastgroup, match.group()
        if kind not in ("ws", "nl", "comment"):
            tokens.append((kind, value, line))
        line += value.count("\n")
        pos = match.end()
    return tokens


def parse(text: str) -> list[Block]:
    tokens = tokenize(text)
    blocks, i = _body(tokens, 0, top=True)
    if i != len(tokens):
        raise ValueError(f"line {tokens[i][2]}: unexpected {tokens[i][1]!r}")
    return blocks.blocks


def _body(tokens: list[tuple[str, str, int]], i: int, top: bool = False) -> tuple[Block, int]:
    body = Block("<body>")
    while i < len(tokens):
        kind, value, line = tokens[i]
        if value == "}" and not top:
            return body, i + 1
        if kind != "ident":
            raise ValueError(f"line {line}: expected a name, got {value!r}")
        nxt = tokens[i + 1][1] if i + 1 < len(tokens) else ""
        if nxt == "=":
            expr, i = _expression(tokens, i + 2)
            if value in body.attributes:
                raise ValueError(f"line {line}: {value} set twice")
            body.attributes[value] = expr
        elif nxt == "{" or (tokens[i + 1][0] == "string" and tokens[i + 2][1] == "{"):
            label = None
            if nxt != "{":
                label = tokens[i + 1][1][1:-1]
                i += 1
            inner, i = _body(tokens, i + 2)
            body.blocks.append(Block(value, label, inner.attributes, inner.blocks))
        else:
            raise ValueError(f"line {line}: {value} is neither an attribute nor a block")
    if not top:
        raise ValueError("unclosed block")
    return body, i


def _expression(tokens: list[tuple[str, str, int]], i: int) -> tuple[str, int]:
    """Tokens up to the end of the line on which every bracket opened by the expression is closed."""
    depth, parts = 0, []
    while i < len(tokens):
        _kind, value, line = tokens[i]
        depth += value in "{[(" and len(value) == 1
        depth -= value in "}])" and len(value) == 1
        if depth < 0:
            break
        parts.append(value)
        i += 1
        ends_line = i == len(tokens) or tokens[i][2] > line
        if depth == 0 and ends_line and value not in (",", "=", "+"):
            break
    return " ".join(parts), i
