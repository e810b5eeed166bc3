"""Finding the programs a lab runs.

The rule: every binary is looked up on PATH (so PATH decides, and a test can hide one):
- `prometheus`; `prometheus-alertmanager` (Debian's name), else `alertmanager`;
- `rabbitmq-server`: its symlinks are followed to the real file, and the directory of that file must hold the
  foreground scripts `rabbitmq-server` and `rabbitmqctl`. On Debian `/usr/sbin/rabbitmq-server` links to
  `/usr/lib/rabbitmq/bin/rabbitmq-script-wrapper` (which switches to the rabbitmq user and writes under /var),
  so the lab runs `/usr/lib/rabbitmq/bin/rabbitmq-server`; with a tarball's `sbin/` on PATH it runs that one;
- `supervisord` next to the running Python (the virtualenv's), else on PATH.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from chaoslab.errors import LabError

INSTALL_HINT = (
    "install them (as root): apt-get install -y prometheus prometheus-alertmanager rabbitmq-server"
    "   (or: make setup)"
)


@dataclass(frozen=True)
class Binaries:
    prometheus: Path
    alertmanager: Path
    rabbitmq_server: Path
    rabbitmqctl: Path
    supervisord: Path


def _which(*names: str, path: str | None = None) -> Path | None:
    for name in names:
        found = shutil.which(name, path=path)
        if found:
            return Path(found)
    return None


def rabbitmq_scripts(path: str | None = None) -> tuple[Path, Path] | None:
    """(foreground rabbitmq-server, rabbitmqctl) by the rule above, or None."""
    found = _which("rabbitmq-server", path=path)
    if found is None:
        return None
    scripts = found.resolve().parent
    server, ctl = scripts / "rabbitmq-server", scripts / "rabbitmqctl"
    if not (server.exists() and ctl.exists()) or server.resolve().name != "rabbitmq-server":
        return None
    return server, ctl


def supervisord_binary() -> Path | None:
    beside = Path(sys.executable).parent / "supervisord"
    if beside.exists():
        return beside
    return _which("supervisord")


def find_binaries(path: str | None = None) -> Binaries:
    """All binaries, or one LabError naming every missing one with the install command."""
    path = path if path is not None else os.environ.get("PATH", os.defpath)
    prometheus = _which("prometheus", path=path)
    alertmanager = _which("prometheus-alertmanager", "alertmanager", path=path)
    rabbit = rabbitmq_scripts(path)
    supervisord = supervisord_binary()
    missing = []
    if prometheus is None:
        missing.append("prometheus (package prometheus)")
    if alertmanager is None:
        missing.append("prometheus-alertmanager (package prometheus-alertmanager)")
    if rabbit is None:
        missing.append("rabbitmq-server (package rabbitmq-server; its foreground script and rabbitmqctl)")
    if supervisord is None:
        raise LabError("supervisord not found beside Python or on PATH",
                       hint="install the project: pip install -e . (it depends on supervisor), or make setup")
    if missing:
        raise LabError("missing on PATH: " + "; ".join(missing), hint=INSTALL_HINT)
    assert prometheus and alertmanager and rabbit
    return Binaries(prometheus, alertmanager, rabbit[0], rabbit[1], supervisord)
