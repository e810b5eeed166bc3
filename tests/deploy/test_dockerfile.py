"""services/Dockerfile and .dockerignore, read instruction by instruction (no Docker engine here to build them)."""

from __future__ import annotations

import fnmatch
import http.server
import json
import os
import re
import socket
import socketserver
import subprocess
import sys
import threading

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


def _python_healthchecks() -> dict[str, str]:
    """{where: code} of every healthcheck that is `python -c <code>`: the image's and each compose service's."""
    checks = {}
    (image,) = [rest for word, rest in stages()["service"] if word == "HEALTHCHECK"]
    checks["Dockerfile service"] = json.loads(image[image.index("CMD") + 3:].strip())[2]
    for name, service in compose_resolved()["services"].items():
        test = (service.get("healthcheck") or {}).get("test") or []
        if test[1:3] == ["python", "-c"] and "urllib" in test[3]:
            checks[f"compose {name}"] = test[3]
    return checks


class _Answer(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        self.send_response(self.status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize("status", [200, 503])
def test_http_healthchecks_ask_the_container_itself_even_behind_a_proxy(status: int) -> None:
    """Docker passes a configured proxy into containers (HTTP_PROXY/HTTPS_PROXY, ~/.docker/config.json), and urllib
    sends even 127.0.0.1 through it unless NO_PROXY says otherwise: every python healthcheck then asked the proxy
    and the container was never healthy. Run each one here with a proxy set that does not exist, against a server
    on the port it asks: it must report that server's answer (200 healthy, 503 not)."""
    handler = type("Answer", (_Answer,), {"status": status})
    with socketserver.TCPServer(("127.0.0.1", 0), handler) as server, socket.socket() as closed:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        closed.bind(("127.0.0.1", 0))
        proxy = f"http://127.0.0.1:{closed.getsockname()[1]}"
        port = server.server_address[1]
        env = {k: v for k, v in os.environ.items() if k.lower() not in ("no_proxy", "http_proxy", "https_proxy")}
        env.update(HTTP_PROXY=proxy, HTTPS_PROXY=proxy, http_proxy=proxy, https_proxy=proxy, ADMIN_PORT=str(port))
        checks = _python_healthchecks()
        assert len(checks) >= 8, checks
        try:
            for where, code in checks.items():
                code = re.sub(r"127\.0\.0\.1:\d+", f"127.0.0.1:{port}", code)  # fixed ports: this server's
                done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                      timeout=30)
                assert (done.returncode == 0) == (status == 200), f"{where}: {done.stderr[-300:]}"
        finally:
            server.shutdown()
