"""services/Dockerfile and .dockerignore, read instruction by instruction (no Docker engine here to build them)."""

from __future__ import annotations

import ast
import fnmatch
import http.server
import importlib.metadata
import importlib.util
import json
import os
import re
import socket
import socketserver
import subprocess
import sys
import threading
import tomllib

import pytest
from deploy_support import REPO, compose_resolved
from packaging.requirements import Requirement

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


def _chain(stage: str) -> list[str]:
    """The stage and the stages it is built FROM, base first."""
    chain = []
    name = stage
    while name in stages():  # follow FROM <stage> back to the base
        chain.insert(0, name)
        name = stages()[name][0][1].split()[0]
    return chain


def _instructions_of(stage: str) -> list[tuple[str, str]]:
    return [instruction for s in _chain(stage) for instruction in stages()[s]]


def _final_user(stage: str) -> str:
    users = [rest for word, rest in _instructions_of(stage) if word == "USER"]
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
        ("services/kit/__pycache__/app.cpython-311.pyc", True), ("services/proto/generate.py", True),
        ("requirements.lock", False), ("pyproject.toml", False), ("services/kit/app.py", False),
        ("chaoslab/lab/webhook.py", False),
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


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _venv_requirements(stage: str) -> list[str]:
    """The requirements installed into the /opt/venv that `stage` copies (from the stage that builds it)."""
    (source,) = [rest.split()[0].split("=", 1)[1] for word, rest in _instructions_of(stage)
                 if word == "COPY" and rest.startswith("--from=") and "/opt/venv" in rest]
    (install,) = [rest for word, rest in stages()[source] if word == "RUN" and "pip install" in rest]
    words = install[install.index("pip install") + len("pip install"):].split("&&")[0].split()
    requirements, i = [], 0
    while i < len(words):
        word = words[i]
        if word in ("-c", "-r"):
            if word == "-r" and words[i + 1].endswith("requirements.lock"):
                lock = (REPO / "requirements.lock").read_text(encoding="utf-8").splitlines()
                requirements += [line.split("==")[0] for line in lock if line and not line.startswith("#")]
            elif word == "-r" and "['project']['dependencies']" in install and f"> {words[i + 1]}" in install:
                pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
                requirements += pyproject["project"]["dependencies"]  # written from pyproject.toml in the RUN
            elif word == "-r":
                raise AssertionError(f"{source}: cannot read {words[i + 1]} here")
            i += 2
            continue
        requirements += arg_default(word[1:].strip("{}")).strip('"').split() if word.startswith("$") else [word]
        i += 1
    return requirements


def _closure(requirements: list[str]) -> set[str]:
    """Every distribution `requirements` install, read from the installed packages' metadata (.venv)."""
    seen: set[str] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        requirement = todo.pop()
        key = (_canonical(requirement.name), tuple(sorted(requirement.extras)))
        if key in seen:
            continue
        seen.add(key)
        extras = set(requirement.extras) | {""}
        for line in importlib.metadata.distribution(requirement.name).requires or []:
            needed = Requirement(line)
            if needed.marker is None or any(needed.marker.evaluate({"extra": e}) for e in extras):
                todo.append(needed)
    return {name for name, _extras in seen}


def _imported_distributions(folder: str) -> dict[str, str]:
    """{distribution: a module that imports it} for the third-party imports of the files under `folder` that
    reach the build context (.dockerignore)."""
    owners = importlib.metadata.packages_distributions()
    found: dict[str, str] = {}
    for path in sorted((REPO / folder).rglob("*.py")):
        relative = path.relative_to(REPO).as_posix()
        if _dockerignore_excludes(relative):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                # `from opentelemetry import trace`: the names may be modules of a namespace package
                names = [f"{node.module}.{a.name}" if importlib.util.find_spec(node.module).origin is None
                         else node.module for a in node.names]
            else:
                continue
            for module in names:
                top = module.split(".")[0]
                if top in sys.stdlib_module_names or top in ("services", "__future__"):
                    continue
                candidates = owners.get(top, [])
                if len(candidates) > 1:  # a namespace package (opentelemetry, google): whose file is it?
                    origin = importlib.util.find_spec(module).origin
                    candidates = [c for c in candidates
                                  if any(str(importlib.metadata.distribution(c).locate_file(f)) == origin
                                         for f in importlib.metadata.distribution(c).files or [])]
                assert len(candidates) == 1, f"{relative}: which distribution is {module}? {candidates}"
                found.setdefault(_canonical(candidates[0]), relative)
    return found


def test_the_service_image_has_what_the_services_import_and_no_development_tooling() -> None:
    """The service image's virtualenv: every third-party import of the code it copies is installed, and nothing
    of the development and tools side is (the test runner, linter, validators, code generators, Locust, Chaos
    Toolkit, the lab's CLI): before, it was the whole requirements.lock."""
    installed = _closure(_venv_requirements("service"))
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    tooling = {_canonical(Requirement(r).name) for r in pyproject["project"]["optional-dependencies"]["dev"]}
    tooling |= {"locust", "chaostoolkit", "chaostoolkit-lib", "supervisor", "typer", "grafana-foundation-sdk"}
    assert not installed & tooling, f"development tooling in the service image: {sorted(installed & tooling)}"
    copied = {rest.split()[0] for word, rest in _instructions_of("service") if word == "COPY" and "--from" not in rest}
    assert copied == {"services/"}, f"the service image copies {copied}"
    missing = {d: where for d, where in _imported_distributions("services").items() if d not in installed}
    assert not missing, (f"imported but not installed in the service image: {missing}; add the distribution to "
                         "SERVICE_REQUIREMENTS in services/Dockerfile (and to pyproject.toml and requirements.lock)")


def test_the_tools_image_installs_the_project_dependencies_without_the_dev_extra() -> None:
    installed = _closure(_venv_requirements("tools"))
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert {_canonical(Requirement(r).name) for r in pyproject["project"]["dependencies"]} <= installed
    # The dev extra's own tools (pytest comes with Locust, which ships a pytest plugin).
    assert not installed & {"ruff", "kubernetes-validate", "grpcio-tools", "pytest-asyncio", "pytest-timeout"}
