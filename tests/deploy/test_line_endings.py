"""Files that a container, a shell or kustomize reads byte for byte keep LF line endings in every checkout.

Git for Windows checks text out with CRLF (core.autocrlf=true, its installer's default) unless .gitattributes
says otherwise; a CRLF script fails in a Linux container ("/bin/sh^M: bad interpreter", `set -eu` on "set: -e\\r")
and the postgres image's init script is one, mounted from the checkout. `git check-attr eol` tells what a
checkout will write, whatever the machine's settings."""

from __future__ import annotations

import subprocess

import pytest
from deploy_support import REPO, bind_mounts, compose_raw

pytestmark = pytest.mark.quick


def _tracked() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    return [p for p in out.decode().split("\0") if p and (REPO / p).is_file()]


def _read_raw() -> set[str]:
    """Tracked files read by something outside Python's universal newlines: scripts (a shebang), what compose
    mounts into containers, what kustomize puts into ConfigMaps, the Dockerfile and env files."""
    tracked = _tracked()
    chosen = {p for p in tracked if (REPO / p).read_bytes()[:2] == b"#!"}
    for service in compose_raw()["services"].values():
        for source, _target in bind_mounts(service):
            if source.startswith("./"):
                prefix = source[2:].rstrip("/")
                chosen |= {p for p in tracked if p == prefix or p.startswith(prefix + "/")}
    chosen |= {p for p in tracked if p.startswith(("k8s/base/postgres/", "k8s/base/rabbitmq/"))}
    chosen |= {p for p in tracked if p.endswith(("Dockerfile", ".env.example", ".sh", ".alloy", ".conf"))}
    return chosen


def test_files_read_raw_are_checked_out_with_lf_everywhere() -> None:
    files = sorted(_read_raw())
    assert "compose/postgres/init-databases.sh" in files and len(files) > 10
    out = subprocess.run(["git", "check-attr", "eol", "--stdin"], cwd=REPO, input="\n".join(files),
                         capture_output=True, text=True, check=True).stdout
    wrong = [line for line in out.splitlines() if not line.endswith(": eol: lf")]
    assert not wrong, "checked out with the machine's line endings:\n" + "\n".join(wrong)
