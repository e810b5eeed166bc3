"""Shared helpers of the offline deployment checks: paths, validators on PATH, compose file access.

Nothing here mocks a tool: the checks run the real validators that exist on the build machines
(docker-compose 1.29, kubectl + kustomize, promtool, amtool) and fail when one is missing, because a missing
validator must not read as a passing check.
"""

from __future__ import annotations

import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.observability.yml"
ENV_EXAMPLE = REPO / "compose" / ".env.example"
COMPOSE_SCHEMA = REPO / "tests" / "schemas" / "compose-spec.json"

# The six services, in the order of docs/design.md.
SERVICES = ("gateway", "auth", "users", "orders", "payments", "notifications")


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: the deployment checks need it (see docs/deploy.md)")
    return path


def run(args: list[str], *, cwd: Path = REPO, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300)
    if check and done.returncode != 0:
        pytest.fail(f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def compose_cmd(*args: str, compose_file: Path = COMPOSE_FILE) -> list[str]:
    return [tool("docker-compose"), "--env-file", str(ENV_EXAMPLE), "-f", str(compose_file), *args]


@cache
def compose_resolved() -> dict[str, Any]:
    """The compose file as docker-compose itself resolves it (interpolated from compose/.env.example)."""
    return yaml.safe_load(run(compose_cmd("config")).stdout)


@cache
def compose_raw() -> dict[str, Any]:
    return load_yaml(COMPOSE_FILE)


def service_module(service: dict[str, Any]) -> str | None:
    """`orders` for a compose service whose command is `python -m services.orders`, else None."""
    command = service.get("command") or []
    if isinstance(command, str):
        command = command.split()
    for i, arg in enumerate(command[:-1]):
        if arg == "-m" and command[i + 1].startswith("services."):
            return command[i + 1].split(".", 1)[1]
    return None


def app_services() -> dict[str, dict[str, Any]]:
    """Compose services that run one of the six chaoslab services, keyed by compose name."""
    services = compose_resolved()["services"]
    return {name: svc for name, svc in services.items() if service_module(svc) in SERVICES}


def bind_mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(host path as written, container path) of a raw compose service's bind mounts (short syntax)."""
    mounts = []
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            if volume.get("type") == "bind":
                mounts.append((volume["source"], volume["target"]))
            continue
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            mounts.append((source, target))
    return mounts


def materialise_mounts(service_name: str, root: Path) -> None:
    """Copy a compose service's repository bind mounts under `root` at their container paths, so a validator
    sees the files exactly where the container would (relative includes such as rule_files resolve the same)."""
    service = compose_raw()["services"][service_name]
    for source, target in bind_mounts(service):
        if not source.startswith("./"):
            continue
        host = REPO / source
        if not host.exists():
            pytest.fail(f"{service_name}: mounted {source} does not exist")
        dest = root / target.lstrip("/")
        if host.is_dir():
            shutil.copytree(host, dest, dirs_exist_ok=True)
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(host, dest)


def host_path_for(service_name: str, container_path: str) -> Path | None:
    """The repository file mounted at `container_path` in a compose service (None when not mounted)."""
    for source, target in bind_mounts(compose_raw()["services"][service_name]):
        if source.startswith("./") and container_path.startswith(target.rstrip("/")):
            rest = container_path[len(target.rstrip("/")):].lstrip("/")
            return REPO / source / rest if rest else REPO / source
    return None


def crd_problems(doc: dict[str, Any], schemas: dict[str, dict[str, Any]], family: str) -> list[str]:
    """What the API server would refuse of `doc` for its CRD's structural schema: an unknown kind of `family`
    (Istio, Chaos Mesh), another apiVersion, or the schema's own errors. `schemas`: kind -> {schema, apiVersion}."""
    import jsonschema

    kind = doc.get("kind")
    if kind not in schemas:
        return [f"{kind}: not a{'n' if family[0] in 'AEIOU' else ''} {family} kind"]
    found = []
    if doc.get("apiVersion") != schemas[kind]["apiVersion"]:
        found.append(f"{kind}: apiVersion {doc.get('apiVersion')} is not {schemas[kind]['apiVersion']}")
    validator = jsonschema.Draft7Validator(schemas[kind]["schema"])
    found += [f"{kind} {doc['metadata']['name']}: {'.'.join(map(str, e.absolute_path))}: {e.message}"
              for e in validator.iter_errors(doc)]
    return found
