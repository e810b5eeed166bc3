"""docker-compose.observability.yml, started with podman from its own definitions.

docker-compose 1.29 (Debian's) resolves the file (`config`: interpolation from an env file, paths made absolute),
and each service of the chosen subset becomes `podman run` with the service's image, command, environment,
volumes, published ports, hostname, restart policy, stop grace period and healthcheck, on one network where it
answers to its service name (a network alias per replica, as compose's DNS does). Start order follows
`depends_on`: `service_started` waits for the container, `service_healthy` for its healthcheck, which this
driver runs itself (`podman healthcheck run`: there is no systemd here to time periodic checks).

What is not compose here: the infrastructure images are the Debian-built stand-ins of ct_images (the compose file's
`image:` is mapped to them), the services outside the subset (Grafana, Loki, Alloy, Jaeger, Locust) are not
started and the dependencies on them are dropped, and every container gets the runc runtime and resource limits
this machine allows (ct_podman).
"""

from __future__ import annotations

import importlib.util
import json
import re
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from ct_podman import LABEL, podman, run

# What runs: the shop, its state, the alerting path and the chaos runner.
SUBSET = ("postgres", "rabbitmq", "alertmanager", "prometheus", "auth", "users", "payments", "notifications",
          "orders", "gateway", "chaos-runner")
# What cannot run here (no image can be pulled and none of these is packaged by Debian), and why it is not missed.
NOT_STARTED = {
    "grafana": "Grafana: no package or image here; provisioning is validated offline (tests/deploy)",
    "loki": "Loki: no package or image here; its config is validated offline",
    "alloy": "Alloy: no package or image here; its config is validated offline",
    "jaeger": "Jaeger: no package or image here; the services' OTLP exports fail and their spans are dropped",
    "locust-master": "Locust: not needed by the compose experiments (they place their own orders)",
    "locust-worker": "Locust: not needed by the compose experiments",
}
# This module's own host ports (published on 127.0.0.1 only; never the machine's standard ports).
HOST_PORTS = (23100, 23199)


def _duration(text: str | None, default: float) -> float:
    if not text:
        return default
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", str(text)))


def _free_port(taken: set[int]) -> int:
    for port in range(*HOST_PORTS):
        if port in taken:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        taken.add(port)
        return port
    raise RuntimeError(f"no free port in {HOST_PORTS}")


@dataclass
class Stack:
    repo: Path
    workdir: Path
    run_id: str
    images: dict[str, str]  # the compose file's image (repository:tag) -> the image to run
    scale: dict[str, int] = field(default_factory=dict)
    settings: dict[str, str] = field(default_factory=dict)
    services: dict[str, Any] = field(default_factory=dict)
    host_ports: dict[str, int] = field(default_factory=dict)

    @property
    def project(self) -> str:
        return f"chaoslab-{self.run_id}"

    @property
    def network(self) -> str:
        return f"{self.project}_default"

    def container(self, service: str, replica: int = 1) -> str:
        return f"{self.project}-{service}-{replica}"

    def replicas(self, service: str) -> list[str]:
        return [self.container(service, n) for n in range(1, self.scale.get(service, 1) + 1)]

    # -- resolving the compose file -----------------------------------------------------------------------------

    def write_env_file(self, tag: str) -> Path:
        """compose/.env as compose/credentials.py writes it (fresh secrets), with this run's project name, image tag
        and free host ports."""
        credentials = _compose_credentials(self.repo)
        example = (self.repo / "compose" / ".env.example").read_text(encoding="utf-8")
        taken: set[int] = set()
        overrides = {"COMPOSE_PROJECT_NAME": self.project, "CHAOSLAB_TAG": tag}
        for line in example.splitlines():
            key = line.split("=", 1)[0]
            if "=" in line and not line.lstrip().startswith("#") and key.endswith("_HOST_PORT"):
                overrides[key] = str(_free_port(taken))
                self.host_ports[key] = int(overrides[key])
        text, settings = credentials.render(example, overrides)
        self.settings.update(settings)
        path = self.workdir / "compose.env"
        credentials.write_private(path, text)
        return path

    def resolve(self, env_file: Path) -> None:
        done = subprocess.run(["docker-compose", "--env-file", str(env_file), "-f",
                               str(self.repo / "docker-compose.observability.yml"), "config"],
                              cwd=self.repo, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"docker-compose config failed:\n{done.stderr[-2000:]}")
        self.services = yaml.safe_load(done.stdout)["services"]
        unknown = set(self.services) - set(SUBSET) - set(NOT_STARTED)
        if unknown:
            raise RuntimeError(f"the compose file has services this test does not know: {sorted(unknown)}")

    def order(self) -> list[str]:
        """The subset in an order that starts every dependency first (depends_on, within the subset)."""
        ordered: list[str] = []

        def visit(name: str, path: tuple[str, ...]) -> None:
            if name in ordered:
                return
            if name in path:
                raise RuntimeError(f"dependency cycle: {' -> '.join((*path, name))}")
            for dep in self.services[name].get("depends_on") or {}:
                if dep in SUBSET:
                    visit(dep, (*path, name))
            ordered.append(name)

        for name in SUBSET:
            visit(name, ())
        return ordered

    # -- running it ---------------------------------------------------------------------------------------------

    def _labels(self, service: str | None = None) -> list[str]:
        labels = ["--label", f"{LABEL}={self.run_id}", "--label", f"com.docker.compose.project={self.project}"]
        if service:
            labels += ["--label", f"com.docker.compose.service={service}"]
        return labels

    def create_network(self) -> None:
        podman("network", "create", *self._labels(), self.network)

    def _volume(self, spec: str) -> list[str]:
        source, target, *mode = spec.split(":")
        if not source.startswith("/"):  # a named volume of the project
            source = f"{self.project}_{source}"
            if podman("volume", "exists", source, check=False).returncode != 0:
                podman("volume", "create", *self._labels(), source)
        return ["-v", ":".join([source, target, *mode])]

    def _healthcheck(self, check: dict[str, Any]) -> list[str]:
        test = check["test"]
        command = json.dumps(test[1:]) if test[0] == "CMD" else test[1]
        args = ["--health-cmd", command, "--health-retries", str(check.get("retries", 3))]
        for key, flag in (("interval", "--health-interval"), ("timeout", "--health-timeout"),
                          ("start_period", "--health-start-period")):
            if key in check:
                args += [flag, check[key]]
        return args

    def start(self, service: str) -> None:
        spec = self.services[service]
        image = self.images[spec["image"]]
        for number, name in enumerate(self.replicas(service), start=1):
            env_file = self.workdir / f"{name}.env"
            env_file.write_text("".join(f"{k}={v}\n" for k, v in (spec.get("environment") or {}).items()),
                                encoding="utf-8")
            env_file.chmod(0o600)
            args = ["-d", "--name", name, *self._labels(service), "--network", self.network,
                    "--network-alias", service, "--env-file", str(env_file)]
            if spec.get("hostname"):
                args += ["--hostname", spec["hostname"]]
            if spec.get("restart"):
                args += ["--restart", spec["restart"]]
            if spec.get("stop_grace_period"):
                args += ["--stop-timeout", str(int(_duration(spec["stop_grace_period"], 10)))]
            for volume in spec.get("volumes") or []:
                args += self._volume(volume)
            if number == 1:  # compose cannot publish one host port twice either; the scaled services have none
                for port in spec.get("ports") or []:
                    args += ["-p", str(port)]
            if spec.get("healthcheck") and not spec["healthcheck"].get("disable"):
                args += self._healthcheck(spec["healthcheck"])
            command = spec.get("command") or []
            run(*args, image, *command)

    def healthy(self, container: str) -> bool:
        return podman("healthcheck", "run", container, check=False, timeout=60).returncode == 0

    def running(self, container: str) -> bool:
        done = podman("inspect", container, "--format", "{{.State.Running}}", check=False)
        return done.stdout.strip() == "true"

    def wait(self, service: str, condition: str) -> None:
        check = self.services[service].get("healthcheck") or {}
        budget = max(180.0, _duration(check.get("start_period"), 0) + _duration(check.get("interval"), 10)
                     * int(check.get("retries", 3)) * 2)
        deadline = time.monotonic() + budget
        for container in self.replicas(service):
            while True:
                ok = self.healthy(container) if condition == "service_healthy" else self.running(container)
                if ok:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{container} not {condition.removeprefix('service_')} after {budget:.0f} s"
                                       f":\n{self.logs(container)}")
                time.sleep(1)

    def up(self) -> list[str]:
        """Start the subset in dependency order; returns what compose would have done that this does not."""
        dropped = []
        self.create_network()
        for service in self.order():
            for dep, rule in (self.services[service].get("depends_on") or {}).items():
                if dep in SUBSET:
                    self.wait(dep, rule.get("condition", "service_started"))
                else:
                    dropped.append(f"{service} -> {dep} ({NOT_STARTED[dep]})")
            self.start(service)
        for service in SUBSET:
            self.wait(service, "service_healthy" if self.services[service].get("healthcheck") else "service_started")
        return dropped

    # -- looking inside -----------------------------------------------------------------------------------------

    def exec(self, container: str, *command: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return podman("exec", container, *command, check=False, timeout=timeout)

    def logs(self, container: str, tail: int = 60) -> str:
        done = podman("logs", "--tail", str(tail), container, check=False, timeout=60)
        return (done.stdout + done.stderr)[-6000:]

    def restarts(self, container: str) -> int:
        return int(podman("inspect", container, "--format", "{{.RestartCount}}").stdout.strip() or 0)


def _compose_credentials(repo: Path) -> Any:
    """compose/credentials.py (a script next to the compose file, not a package) as a module."""
    spec = importlib.util.spec_from_file_location("compose_credentials", repo / "compose" / "credentials.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
