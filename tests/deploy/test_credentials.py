"""Both generators of deploy credentials (compose/credentials.py, k8s/credentials.py) leave no placeholder, write
private files, keep what is there, and give the shop admin a password auth accepts: auth refuses to start with a
guessable BOOTSTRAP_ADMIN, so a generator that wrote one would give a stack that never gets ready."""

from __future__ import annotations

import importlib.util
import stat
import sys
from pathlib import Path
from types import ModuleType

import pytest

from services.auth.models import weak_password

pytestmark = pytest.mark.quick

REPO = Path(__file__).resolve().parents[2]


def _script(relative: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(relative.replace("/", "_")[:-3], REPO / relative)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _settings(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))


def test_compose_env_has_fresh_private_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    credentials = _script("compose/credentials.py")
    example = credentials.EXAMPLE.read_text(encoding="utf-8")
    assert weak_password(_settings(example)["BOOTSTRAP_ADMIN"].split(":", 1)[1]), "the example's placeholder passes"
    monkeypatch.setattr(credentials, "ENV_FILE", tmp_path / ".env")
    assert credentials.main([]) == 0
    written = (tmp_path / ".env").read_text(encoding="utf-8")
    assert stat.S_IMODE((tmp_path / ".env").stat().st_mode) == 0o600
    settings = _settings(written)
    assert set(settings) == set(_settings(example)), "the example's settings, no more, no fewer"
    assert not [k for k, v in settings.items() if credentials.PLACEHOLDER in v]
    email, password = settings["BOOTSTRAP_ADMIN"].split(":", 1)
    assert weak_password(password, email) is None
    assert credentials.main([]) == 1 and (tmp_path / ".env").read_text(encoding="utf-8") == written
    assert credentials.main(["--force"]) == 0 and (tmp_path / ".env").read_text(encoding="utf-8") != written


def test_kubernetes_secrets_are_fresh_and_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    credentials = _script("k8s/credentials.py")
    monkeypatch.setattr(credentials, "SECRETS", tmp_path / "lab-secrets.env")
    assert credentials.main([]) == 0
    assert stat.S_IMODE((tmp_path / "lab-secrets.env").stat().st_mode) == 0o600
    settings = _settings((tmp_path / "lab-secrets.env").read_text(encoding="utf-8"))
    email, password = settings["bootstrap-admin"].split(":", 1)
    assert weak_password(password, email) is None
    assert credentials.main([]) == 1 and credentials.main(["--if-missing"]) == 0
