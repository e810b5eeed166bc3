"""The one module that runs the iptables binary (iptables-nft on Debian 12), for the isolated lab's chains.

Everything the lab puts into netfilter lives in chains of its own, named `CHAOSLAB-<base>` and
`CHAOSLAB-<base>-<suffix>`, jumped to from the built-in chains by rules that name them: clearing a lab is
deleting those jumps and flushing and deleting those chains, and no rule of anyone else is ever touched.
A chain's rules are replaced in one transaction with `iptables-restore --noflush`, where every chain declared in
the input is flushed and refilled and nothing else changes (kube-proxy updates its Service chains that way).
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass

from chaoslab.errors import LabError

IPTABLES = "iptables"
RESTORE = "iptables-restore"
SAVE = "iptables-save"
TABLES = ("filter", "nat")
TIMEOUT_S = 20.0
# iptables-save -c: "[packets:bytes] -A CHAIN rest"
_COUNTED = re.compile(r"^\[(\d+):(\d+)\] -A (\S+) (.*)$")


def available() -> bool:
    return all(shutil.which(tool) for tool in (IPTABLES, RESTORE, SAVE))


def _run(args: list[str], *, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    except FileNotFoundError:
        raise LabError(f"{args[0]} not found", hint="install iptables (apt-get install iptables), or make setup") \
            from None
    if check and done.returncode != 0:
        raise LabError(f"{' '.join(args[:6])}... failed: {done.stderr.strip()[:400]}")
    return done


def run(table: str, *args: str, check: bool = True) -> bool:
    """`iptables -w -t TABLE ARGS`; with check=False, whether it succeeded."""
    return _run([IPTABLES, "-w", "-t", table, *args], check=check).returncode == 0


def save(table: str, *, counters: bool = False) -> str:
    return _run([SAVE, "-t", table] + (["-c"] if counters else [])).stdout


def chains(table: str, prefix: str) -> list[str]:
    """The chains of `table` whose names start with `prefix`."""
    found = []
    for line in save(table).splitlines():
        if line.startswith(":") and line[1:].split(" ", 1)[0].startswith(prefix):
            found.append(line[1:].split(" ", 1)[0])
    return found


@dataclass(frozen=True)
class Rule:
    table: str
    chain: str
    spec: str  # as iptables-save writes it, without "-A CHAIN"
    packets: int
    bytes: int


def rules(table: str, prefix: str) -> list[Rule]:
    """Every rule with its counters in the chains whose names start with `prefix`."""
    out = []
    for line in save(table, counters=True).splitlines():
        match = _COUNTED.match(line)
        if match and match.group(3).startswith(prefix):
            out.append(Rule(table, match.group(3), match.group(4), int(match.group(1)), int(match.group(2))))
    return out


def jumps(table: str, prefix: str) -> list[tuple[str, str]]:
    """(built-in chain, rule spec) of every rule in a chain outside `prefix` that jumps into one of its chains."""
    out = []
    for line in save(table).splitlines():
        if not line.startswith("-A "):
            continue
        chain, _, spec = line[3:].partition(" ")
        target = re.search(r"-j (\S+)", spec)
        if not chain.startswith(prefix) and target and target.group(1).startswith(prefix):
            out.append((chain, spec))
    return out


def ensure_chain(table: str, chain: str) -> None:
    if not run(table, "-n", "-L", chain, check=False):
        run(table, "-N", chain)


def ensure_jump(table: str, builtin: str, spec: list[str]) -> None:
    """Insert `-A BUILTIN SPEC` at the head of the built-in chain unless it is there already."""
    if not run(table, "-C", builtin, *spec, check=False):
        run(table, "-I", builtin, "1", *spec)


def delete_jump(table: str, builtin: str, spec: str) -> None:
    """Delete one rule given as iptables-save writes it (no shell: the spec is split on spaces, quotes kept)."""
    run(table, "-D", builtin, *shlex.split(spec), check=False)


def replace(table: str, chain_rules: dict[str, list[str]]) -> None:
    """Replace the rules of each chain (created when missing) in one iptables-restore transaction."""
    lines = [f"*{table}"]
    lines += [f":{chain} - [0:0]" for chain in chain_rules]
    for chain, specs in chain_rules.items():
        lines += [f"-A {chain} {spec}" for spec in specs]
    lines.append("COMMIT")
    _run([RESTORE, "-w", "--noflush"], stdin="\n".join(lines) + "\n")


def delete_chains(table: str, names: list[str]) -> None:
    """Flush and delete chains (their jumps from other chains must be gone or be in `names`)."""
    if not names:
        return
    for name in names:
        run(table, "-F", name, check=False)
    for name in names:
        run(table, "-X", name, check=False)


def remove_prefix(prefix: str) -> list[str]:
    """Remove every chain named with `prefix` from every table, with every jump into them: what a lab leaves.
    Returns what was removed, as "table:chain"."""
    removed = []
    for table in TABLES:
        for builtin, spec in jumps(table, prefix):
            delete_jump(table, builtin, spec)
        names = chains(table, prefix)
        delete_chains(table, names)
        removed += [f"{table}:{n}" for n in names]
    return removed
