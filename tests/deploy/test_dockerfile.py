"""services/Dockerfile and .dockerignore, read instruction by instruction (no Docker engine here to build them)."""

from __future__ import annotations

import fnmatch
import json
import re

import pytest
from deploy_support import REPO, compose_resolved

pytestmark = pytest.mark.quick

DOCKERFILE = REPO / "services" / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def stages() -> dict[str, list[tuple[str, str]]]:
    result: dict[str, list[tuple[str, str]]] = {}
    current = None
    for word, rest in instructions():
        if word == "FROM":
            current = rest.split(" AS ")[-1].strip() if " AS " in rest else rest
            result[current] = [(word, rest)]
        elif current is not None:
            result[current].append((word, rest))
    return result


def arg_default(name: str) -> str:
    for word, rest in instructions():
        if word == "ARG" and rest.startswith(f"{name}="):
            return rest.split("=", 1)[1]
    raise AssertionError(f"ARG {name} has no default")


def test_base_image_is_slim_python_311_pinned_by_patch_version() -> None:
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-[a-z]+)?", arg_default("PYTHON_IMAGE"))
    for word, rest in instructions():
        if word == "FROM":
            image = rest.split()[0]
            assert image == "${PYTHON_IMAGE}" or image in stages(), f"unpinned base {image}"


def _final_user(stage: str) -> str:
    chain = []
    name = stage
    while name in stages():  # follow FROM <stage> back to the base
        chain.insert(0, name)
        name = stages()[name][0][1].split()[0]
    users = [rest for s in chain for word, rest in stages()[s] if word == "USER"]
    return users[-1] if users else "root"


@pytest.mark.parametrize("stage", ["service", "tools"])
def test_runtime_stages_run_as_a_fixed_non_root_uid(stage: str) -> None:
    user = _final_user(stage)
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) >= 1000, f"{stage} runs as {user}"


def test_service_healthcheck_uses_python_urllib_on_the_admin_port() -> None:
    checks = [rest for word, rest in stages()["service"] if word == "HEALTHCHECK"]
    assert len(checks) == 1
    command = json.loads(checks[0][checks[0].index("CMD") + 3:].strip())
    assert command[:2] == ["python", "-c"] and "urllib.request" in command[2]
    assert "ADMIN_PORT" in command[2] and "/health/" in command[2]
    assert not any(tool in checks[0] for tool in ("curl", "wget"))
    # compose repeats the check on every app service: they must be the same command.
    for name in ("gateway", "payments"):
        assert compose_resolved()["services"][name]["healthcheck"]["test"] == ["CMD", *command], name
    assert [rest for word, rest in stages()["tools"] if word == "HEALTHCHECK"] == ["NONE"]


def test_service_is_the_default_target_and_exposes_the_contract_ports() -> None:
    assert list(stages())[-1] == "service"
    exposed = {p for word, rest in stages()["service"] if word == "EXPOSE" for p in rest.split()}
    assert {"8080", "9090", "50051"} <= exposed


def _dockerignore_excludes(path: str) -> bool:
    """Docker's rule: patterns in order, the last matching one decides; a directory match covers its tree."""
    excluded = False
    for raw in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines():
        raw = raw.strip()
        if not raw or raw.startswith("#"):
            continue
        negate = raw.startswith("!")
        pattern = raw.lstrip("!").rstrip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if pattern.startswith("**/"):
            hit = any(fnmatch.fnmatch(p, pattern[3:]) for p in parts)
        else:
            hit = any(fnmatch.fnmatch(p, pattern) for p in prefixes)
        if hit:
            excluded = not negate
    return excluded


@pytest.mark.parametrize(
    ("path", "excluded"),
    [
        (".git/HEAD", True), (".venv/bin/python", True), (".chaoslab/registry.json", True),
        ("compose/.env", True), ("tests/deploy/test_dockerfile.py", True), ("k8s/base/kustomization.yaml", True),
        ("services/kit/__pycache__/app.cpython-311.pyc", True),
        ("requirements.lock", False), ("services/kit/app.py", False), ("chaoslab/lab/webhook.py", False),
    ],
)
def test_dockerignore_keeps_the_context_to_what_the_image_copies(path: str, excluded: bool) -> None:
    assert _dockerignore_excludes(path) is excluded


def test_copied_sources_exist_and_reach_the_build_context() -> None:
    for word, rest in instructions():
        if word != "COPY" or "--from=" in rest:
            continue
        sources = rest.split()[:-1]
        for source in sources:
            assert (REPO / source).exists(), f"COPY {source}: missing in the repository"
            assert not _dockerignore_excludes(source.rstrip("/")), f"COPY {source}: excluded by .dockerignore"
