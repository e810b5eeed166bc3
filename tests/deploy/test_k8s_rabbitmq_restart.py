"""RabbitMQ's StatefulSet survives its pod being re-created: the broker (Debian's rabbitmq-server, the same Erlang
cookie check as the image's) is started twice on directories laid out and permissioned as the kubelet would lay out
the rendered pod's volumes (deploy_kubelet), the second time after fsGroup has been applied to the claim again.

With the Erlang cookie on the claim (HOME=/var/lib/rabbitmq), the second start failed: fsGroup makes the cookie
group-readable and Erlang refuses it ("Cookie file ... must be accessible by owner only"; docker-library/rabbitmq#171,
sapcc/helm-charts#11388). The image's own facts used here: the rabbitmq user's home and the data directory are
/var/lib/rabbitmq, the Mnesia database is /var/lib/rabbitmq/mnesia (docker-library/rabbitmq, Dockerfile)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from deploy_k8s import named
from deploy_kubelet import Pod, ReadOnlyRoot, env_value
from deploy_support import REPO

from support.rabbit import RABBITMQ_SERVER, RabbitNode

IMAGE_HOME = "/var/lib/rabbitmq"  # the rabbitmq user's home in the image
IMAGE_MNESIA = "/var/lib/rabbitmq/mnesia"


def _lab_secrets() -> dict[str, str]:
    text = (REPO / "k8s" / "base" / "lab-secrets.env").read_text(encoding="utf-8")
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))


class PodBroker(RabbitNode):
    """The lab's throwaway node, with HOME, the Mnesia base and the cookie where the pod would have them."""

    def __init__(self, base: Path, pod: Pod) -> None:
        super().__init__(base)
        container = pod.container
        home = env_value(container, "HOME", _lab_secrets()) or IMAGE_HOME
        try:
            self.home = pod.host_path(home)
            self.mnesia = pod.host_path(IMAGE_MNESIA)
        except ReadOnlyRoot as exc:
            pytest.fail(f"rabbitmq writes {exc} (HOME={home}), which is on the read-only root filesystem")
        self.cookie = env_value(container, "RABBITMQ_ERLANG_COOKIE", _lab_secrets())

    def _env(self) -> dict[str, str]:
        env = super()._env()
        env.update(HOME=str(self.home), RABBITMQ_MNESIA_BASE=str(self.mnesia), ERL_CRASH_DUMP=os.devnull)
        if self.cookie:
            env["RABBITMQ_ERLANG_COOKIE"] = self.cookie
        return env


def test_rabbitmq_starts_again_after_its_pod_is_recreated(tmp_path: Path) -> None:
    if not Path(RABBITMQ_SERVER).exists():
        pytest.fail(f"{RABBITMQ_SERVER} is missing (Debian package rabbitmq-server; make setup installs it)")
    statefulset = named("base", "StatefulSet", "rabbitmq")
    assert (statefulset["spec"]["template"]["spec"].get("securityContext") or {}).get("fsGroup") is not None, \
        "no fsGroup: this check would prove nothing"
    for number in (1, 2):  # the first pod, then its replacement on the same claim
        pod = Pod(statefulset, tmp_path / "volumes", number)
        pod.start()
        broker = PodBroker(tmp_path / f"node-{number}", pod)
        try:
            broker.start()
        except RuntimeError as exc:
            log = Path(broker.base.parent / f"rabbit-{broker.port}.out")
            reason = next((line for line in log.read_text(errors="replace").splitlines() if "ookie" in line), "")
            pytest.fail(f"pod {number}: the broker did not start: {exc}\n{reason[-400:]}")
        finally:
            broker.close()
