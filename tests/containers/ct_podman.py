"""podman as the container test drives it, with what these machines need (../shared/notes/kernel-faults.md):
the runc runtime, resource limits no higher than the caller's own (the default nofile and nproc limits of a
container are refused: "error setting rlimit ... operation not permitted"), and no periodic healthchecks (there is
no systemd to time them), so a healthcheck is run on demand with `podman healthcheck run`.

Everything this test creates carries the label LABEL=<run id>, so that a later run can remove what a killed one
left behind, and nothing else is ever touched.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess

LABEL = "dev.chaoslab.container-test"
RUNTIME = "runc"


class PodmanError(RuntimeError):
    pass


def available() -> str | None:
    """None when podman can run containers here, else why not (in words a person can act on)."""
    if shutil.which("podman") is None:
        return "podman is not installed (Debian: apt-get install podman runc netavark aardvark-dns iptables)"
    if shutil.which(RUNTIME) is None:
        return f"the {RUNTIME} runtime is not installed (Debian package {RUNTIME})"
    done = subprocess.run(["podman", "info", "--format", "json"], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        return f"podman info failed: {done.stderr.strip()[-300:]}"
    info = json.loads(done.stdout)
    if info.get("host", {}).get("networkBackend") == "netavark" and shutil.which("iptables") is None:
        return "netavark needs iptables (Debian package iptables) to set up container networks"
    return None


def ulimits() -> list[str]:
    """Limits a container may have here: the caller's own hard limits, or less."""
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    nofile = 65536 if nofile == resource.RLIM_INFINITY else min(nofile, 65536)
    nproc = 32768 if nproc == resource.RLIM_INFINITY else min(nproc, 32768)
    return ["--ulimit", f"nofile={nofile}:{nofile}", "--ulimit", f"nproc={nproc}:{nproc}"]


def podman(*args: str, check: bool = True, timeout: float = 600, input: str | None = None,
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout, input=input,
                          env={**os.environ, **(env or {})})
    if check and done.returncode != 0:
        raise PodmanError(f"podman {' '.join(_short(a) for a in args)} failed ({done.returncode}):\n"
                          f"{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    return done


def _short(arg: str) -> str:
    return arg if len(arg) < 80 else arg[:77] + "..."


def image_exists(name: str) -> bool:
    return podman("image", "exists", name, check=False).returncode == 0


def labelled(kind: str, run_id: str | None = None) -> list[str]:
    """Names of the containers, networks or volumes this test made (in run `run_id`, or in any run)."""
    selector = f"label={LABEL}" if run_id is None else f"label={LABEL}={run_id}"
    if kind == "container":
        out = podman("ps", "-a", "--filter", selector, "--format", "{{.Names}}").stdout
    else:
        out = podman(kind, "ls", "--filter", selector, "--format", "{{.Name}}").stdout
    return [line for line in out.splitlines() if line.strip()]


def remove_run(run_id: str | None = None) -> list[str]:
    """Remove the containers, then the networks and volumes, of one run (or of every run): errors are collected,
    not raised, so that the rest is still removed."""
    problems = []
    for kind, command in (("container", ("rm", "-f", "-t", "2")), ("network", ("network", "rm", "-f")),
                          ("volume", ("volume", "rm", "-f"))):
        for name in labelled(kind, run_id):
            done = podman(*command, name, check=False, timeout=120)
            if done.returncode != 0:
                problems.append(f"{kind} {name}: {done.stderr.strip()[-200:]}")
    return problems


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """`podman run` with this machine's runtime and limits (the runtime is a global option, the limits are run's)."""
    return podman("--runtime", RUNTIME, "run", *ulimits(), *args)
