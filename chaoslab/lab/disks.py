"""The isolated lab's data disks: every service that owns a database keeps it on a size-limited filesystem of its
own, so that a full disk is a real one (ENOSPC from the kernel, seen by SQLite as "database or disk is full").

Each is an ext4 image in the state dir (`STATE/disks/chaoslab-<B>-<service>.img`, sparse, DISK_MB) mounted
through a loop device at `STATE/data/<service>/` while the lab runs (`mount -o loop`: the loop device goes with
the mount). The images keep the databases across `down` and `up`, as the loopback lab's SQLite files do.
Found by their mount points under the state dir, so `down` unmounts them after a crash too.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from chaoslab.errors import LabError
from chaoslab.lab.spec import LabSpec
from services import contract

DISK_MB = 256
TIMEOUT_S = 60.0


def disk_services(spec: LabSpec) -> list[str]:
    """Services with a database and at least one replica."""
    return [s.name for s in contract.SERVICES if s.database and spec.replicas.get(s.name, 0) > 0]


def image(spec: LabSpec, service: str) -> Path:
    return spec.paths.state / "disks" / f"chaoslab-{spec.base_port}-{service}.img"


def mount_point(spec: LabSpec, service: str) -> Path:
    return spec.paths.data / service


def _run(*args: str) -> None:
    done = subprocess.run(list(args), capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    if done.returncode != 0:
        raise LabError(f"{' '.join(args[:4])} failed: {done.stderr.strip()[:300]}")


def mounts_under(root: Path) -> list[Path]:
    """Mount points at or below `root` (from /proc/self/mountinfo), deepest first."""
    root = root.resolve()
    found = []
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        point = Path(line.split()[4].replace("\\040", " "))
        if point == root or root in point.parents:
            found.append(point)
    return sorted(set(found), key=lambda p: len(p.parts), reverse=True)


def mount_all(spec: LabSpec) -> list[Path]:
    """Create (once) and mount every service's disk; the mounted points."""
    mounted = []
    current = set(mounts_under(spec.paths.data))
    for service in disk_services(spec):
        img, point = image(spec, service), mount_point(spec, service)
        img.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        point.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not img.exists():
            with open(img, "wb") as handle:
                handle.truncate(DISK_MB * 1024 * 1024)
            os.chmod(img, 0o600)
            # no blocks reserved for root: the services run as root and must see the disk full at 100%
            _run("mkfs.ext4", "-q", "-F", "-m", "0", "-L", f"cl{spec.base_port}{service[:6]}", str(img))
        if point not in current:
            _run("mount", "-o", "loop,nodev,nosuid", str(img), str(point))
        point.chmod(0o700)
        mounted.append(point)
    return mounted


def unmount_all(spec: LabSpec) -> list[str]:
    """Unmount every mount under the state dir's data folder (lazily when busy); the unmounted points."""
    done = []
    for point in mounts_under(spec.paths.data):
        result = subprocess.run(["umount", str(point)], capture_output=True, text=True, timeout=TIMEOUT_S,
                                check=False)
        if result.returncode != 0:
            subprocess.run(["umount", "-l", str(point)], capture_output=True, timeout=TIMEOUT_S, check=False)
        done.append(str(point))
    return done
