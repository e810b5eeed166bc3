"""Fixtures for the observability tests: the repository paths and a real, empty Prometheus."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaoslab.clients.prometheus import Prometheus
from chaoslab.observability.generate import REPO_ROOT

# Ports reserved for these tests (never the lab's 18000s, never the lab tests' 24000-32000).
PORT_RANGE = range(20900, 21000)


def require_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed (Debian packages prometheus, prometheus-alertmanager)")
    return path


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def generated_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the code generates now, in a temporary dir: structural tests read this, so a broken module
    fails its own test, not only the freshness test (which compares it with the committed files)."""
    from chaoslab.observability.generate import write

    root = tmp_path_factory.mktemp("generated")
    write(root)
    return root


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    """The real Prometheus binary with an empty TSDB on a free port in 20900-20999, through the project's client."""
    binary = require_binary("prometheus")
    home = tmp_path_factory.mktemp("prometheus")
    config = home / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 2s\n")
    for port in PORT_RANGE:
        if not _port_free(port):
            continue
        log = (home / "prometheus.log").open("w")
        proc = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={home / f'data-{port}'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.1)
        if proc.poll() is not None:  # lost the port to someone else: try the next one
            log.close()
            continue
        try:
            yield Prometheus(url)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()
        return
    pytest.fail("no free port for Prometheus in 20900-20999")
