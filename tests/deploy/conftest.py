"""The Kubernetes manifests render with the lab's credentials, which are generated per checkout and never
committed (k8s/credentials.py): make them once for the renders of these tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

K8S = Path(__file__).resolve().parents[2] / "k8s"


@pytest.fixture(scope="session", autouse=True)
def lab_secrets() -> None:
    subprocess.run([sys.executable, str(K8S / "credentials.py"), "--if-missing"], check=True, capture_output=True)
