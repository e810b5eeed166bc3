"""What the kubelet does to a pod's volumes, for checks that run a workload's own binary against its manifest.

No cluster runs here, so a test plays the kubelet's part on directories: each volume of the rendered pod gets a
directory on this machine, PersistentVolumeClaims (volumeClaimTemplates) survive a pod's re-creation and emptyDirs
do not, and the pod's `fsGroup` is applied to every volume at each pod start the way the kubelet applies it
(pkg/volume/volume_linux.go, SetVolumeOwnership, with fsGroupChangePolicy `Always`, the default, which is also
what CSI drivers that handle fsGroup themselves amount to): every file and directory becomes group-owned by
fsGroup, files gain group read-write (0660), directories group read-write-execute plus setgid (02770).
A container path that is on no volume is on the container's root filesystem, which the manifests make read-only.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploy_k8s import pod_spec

RW_MASK = 0o660
EXEC_MASK = 0o110


class ReadOnlyRoot(Exception):
    """A container path that no volume provides: the read-only root filesystem."""


def apply_fs_group(root: Path, gid: int) -> None:
    """The kubelet's SetVolumeOwnership on one volume (fsGroupChangePolicy: Always)."""
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        os.chown(path, -1, gid)
        mode = stat.S_IMODE(path.stat().st_mode) | RW_MASK
        if path.is_dir():
            mode |= stat.S_ISGID | EXEC_MASK
        path.chmod(mode)


@dataclass
class Pod:
    """One incarnation of a StatefulSet's pod: its volumes as directories under `root`."""

    workload: dict[str, Any]
    root: Path
    number: int

    @property
    def container(self) -> dict[str, Any]:
        return pod_spec(self.workload)["containers"][0]

    def volume_dir(self, name: str) -> Path:
        claims = {c["metadata"]["name"] for c in self.workload["spec"].get("volumeClaimTemplates", [])}
        if name in claims:
            return self.root / "claims" / name  # the same disk for every incarnation
        return self.root / f"pod-{self.number}" / name

    def start(self) -> None:
        """Set the pod's writable volumes up as the kubelet does before the containers start."""
        volumes = {v["name"]: v for v in pod_spec(self.workload).get("volumes", [])}
        claims = {c["metadata"]["name"] for c in self.workload["spec"].get("volumeClaimTemplates", [])}
        fs_group = (pod_spec(self.workload).get("securityContext") or {}).get("fsGroup")
        for mount in self.container.get("volumeMounts", []):
            name = mount["name"]
            if name not in claims and "emptyDir" not in volumes.get(name, {}):
                continue  # configMap, secret: read-only files, not where a workload writes
            directory = self.volume_dir(name)
            directory.mkdir(parents=True, exist_ok=True)
            if fs_group is not None:
                apply_fs_group(directory, int(fs_group))

    def host_path(self, container_path: str) -> Path:
        """Where `container_path` lives on this machine (the deepest volume mounted above it)."""
        best = None
        for mount in self.container.get("volumeMounts", []):
            mount_path = mount["mountPath"].rstrip("/")
            if (container_path == mount_path or container_path.startswith(mount_path + "/")) and (
                    best is None or len(mount_path) > len(best["mountPath"].rstrip("/"))):
                best = mount
        if best is None:
            raise ReadOnlyRoot(container_path)
        rest = container_path[len(best["mountPath"].rstrip("/")):].lstrip("/")
        path = self.volume_dir(best["name"]) / rest
        path.mkdir(parents=True, exist_ok=True)
        return path


def env_value(container: dict[str, Any], name: str, secrets: dict[str, str]) -> str | None:
    """A container's environment variable, with secretKeyRef resolved from the lab's secret values."""
    for entry in container.get("env", []):
        if entry["name"] != name:
            continue
        if "value" in entry:
            return entry["value"]
        ref = (entry.get("valueFrom") or {}).get("secretKeyRef")
        return secrets.get(ref["key"]) if ref else None
    return None
