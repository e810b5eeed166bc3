"""The commit a run ran: `git rev-parse HEAD` of the checkout chaoslab runs from (a worktree names its own
commit), and whether that checkout had uncommitted changes to tracked files. CHAOSLAB_COMMIT overrides both, for
a CI job that runs an installed chaoslab outside its checkout. No git, or no checkout: unknown (None)."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass

from chaoslab.lab.paths import repo_root

ENV = "CHAOSLAB_COMMIT"
GIT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Commit:
    sha: str | None
    dirty: bool | None

    @property
    def short(self) -> str:
        return (self.sha or "?")[:10] + ("+" if self.dirty else "")


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(repo_root()), *args], capture_output=True, text=True,
                              timeout=GIT_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def current() -> Commit:
    if os.environ.get(ENV):
        return Commit(os.environ[ENV].strip(), False)
    sha = _git("rev-parse", "HEAD")
    if sha is None:
        return Commit(None, None)
    changes = _git("status", "--porcelain", "--untracked-files=no")
    return Commit(sha, None if changes is None else bool(changes))
