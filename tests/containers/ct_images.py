"""The images of the container test, built here because no registry can be reached.

- base: a Debian 12 root filesystem made by debootstrap (variant minbase) with Python 3.11 (Debian's 3.11.2: the
  lock's Python, though not the 3.11.14 of python:3.11.14-slim-bookworm), imported into podman. It stands in for
  services/Dockerfile's PYTHON_IMAGE; the project's Dockerfile builds the service and tools images on it unchanged.
  It trusts the certificate authorities this machine adds to Debian's (/usr/local/share/ca-certificates: a
  TLS-inspecting egress proxy's, on the build machines) and tells pip to use that store (PIP_CERT), so that pip can
  reach PyPI from inside a build as it does on the machine.
- postgres, rabbitmq, prometheus, alertmanager: the base plus Debian's packages, with the behaviour of the official
  images that the compose file relies on (images/<name>/Containerfile says what, and what differs).

Cache, on one machine, across runs (CHAOSLAB_IMAGE_CACHE, default /var/tmp/chaoslab-images): the debootstrap root
filesystem as a tarball, keyed by the hash of its recipe (suite, mirror, packages); the base and infrastructure
images stay in podman's storage under localhost/chaoslab-ct/<name>:<hash of recipe>, so an unchanged recipe is never
rebuilt; pip's downloads for the project's images are a build cache mount (services/Dockerfile), and podman's
layer cache keeps the dependency layers, whose key includes requirements.lock's contents. The service and tools
images are built for each run, from the cached layers, and removed at its end; old recipes' images are removed
when a new recipe is built.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path

from ct_podman import image_exists, podman

HERE = Path(__file__).resolve().parent
REPOSITORY = "localhost/chaoslab-ct"
SUITE = "bookworm"
MIRROR = os.environ.get("CHAOSLAB_DEBIAN_MIRROR", "http://deb.debian.org/debian")
# What services/Dockerfile needs of its base (python, venv with pip, useradd/groupadd) and pip needs (certificates).
BASE_PACKAGES = ("python3", "python3-venv", "python-is-python3", "ca-certificates", "passwd")
INFRASTRUCTURE = ("postgres", "rabbitmq", "prometheus", "alertmanager")
# Which compose image each Debian-built one stands in for.
STANDS_IN_FOR = {"postgres": "postgres", "rabbitmq": "rabbitmq", "prom/prometheus": "prometheus",
                 "prom/alertmanager": "alertmanager"}


def cache_dir() -> Path:
    path = Path(os.environ.get("CHAOSLAB_IMAGE_CACHE", "/var/tmp/chaoslab-images"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _digest(*parts: str | bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part if isinstance(part, bytes) else part.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def _log(message: str) -> None:
    print(f"[container test] {message}", flush=True)


def _drop_other_tags(name: str, keep: str) -> None:
    """Remove this test's images of `name` built from another recipe (ours only: localhost/chaoslab-ct/...)."""
    out = podman("images", "--format", "{{.Repository}}:{{.Tag}}", f"{REPOSITORY}/{name}", check=False).stdout
    for image in out.split():
        if image != keep:
            podman("rmi", image, check=False)


EXTRA_CAS = Path("/usr/local/share/ca-certificates")


def base_image() -> str:
    cas = sorted(EXTRA_CAS.glob("**/*.crt")) if EXTRA_CAS.is_dir() else []
    recipe = _digest(SUITE, MIRROR, "minbase", *BASE_PACKAGES, *(p.read_bytes() for p in cas))
    tag = f"{REPOSITORY}/debian-python:{recipe}"
    if image_exists(tag):
        return tag
    tarball = cache_dir() / f"debian-{SUITE}-python-{recipe}.tar"
    if not tarball.exists():
        if shutil.which("debootstrap") is None:
            raise RuntimeError("debootstrap is not installed (Debian package debootstrap; make setup installs it)")
        root = cache_dir() / f"rootfs-{recipe}.partial"
        shutil.rmtree(root, ignore_errors=True)
        started = time.monotonic()
        _log(f"debootstrap {SUITE} ({', '.join(BASE_PACKAGES)}) from {MIRROR}")
        done = subprocess.run(["debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}", SUITE,
                               str(root), MIRROR], capture_output=True, text=True, timeout=1200)
        if done.returncode != 0:
            shutil.rmtree(root, ignore_errors=True)
            raise RuntimeError(f"debootstrap failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
        if cas:
            target = root / "usr" / "local" / "share" / "ca-certificates"
            target.mkdir(parents=True, exist_ok=True)
            for ca in cas:
                shutil.copyfile(ca, target / ca.name)
            subprocess.run(["chroot", str(root), "update-ca-certificates"], check=True, capture_output=True,
                           timeout=300)
        for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for item in (root / leftover).glob("*"):
                if item.is_file():
                    item.unlink()
        partial = tarball.with_suffix(".partial")
        subprocess.run(["tar", "-C", str(root), "-cf", str(partial), "."], check=True, timeout=600)
        partial.rename(tarball)
        shutil.rmtree(root, ignore_errors=True)
        _log(f"base root filesystem in {time.monotonic() - started:.0f} s: {tarball}")
    podman("import", "--quiet", "--change", "CMD [\"python3\"]", "--change",
           "ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt", str(tarball), tag, timeout=600)
    _drop_other_tags("debian-python", tag)
    return tag


def infrastructure_image(name: str, base: str) -> str:
    folder = HERE / "images" / name
    files = sorted(p for p in folder.iterdir() if p.is_file())
    recipe = _digest(base, *(p.name for p in files), *(p.read_bytes() for p in files))
    tag = f"{REPOSITORY}/{name}:{recipe}"
    if not image_exists(tag):
        started = time.monotonic()
        podman("build", "--quiet", "--format", "docker", "--build-arg", f"BASE={base}", "-t", tag,
               "-f", str(folder / "Containerfile"), str(folder), timeout=1800)
        _log(f"{name} image in {time.monotonic() - started:.0f} s")
        _drop_other_tags(name, tag)
    return tag


def project_image(repo: Path, target: str, tag: str, base: str) -> str:
    """services/Dockerfile's `target`, built from `repo` with the Debian base as PYTHON_IMAGE."""
    started = time.monotonic()
    podman("build", "--quiet", "--format", "docker", "--layers", "--build-arg", f"PYTHON_IMAGE={base}",
           "--target", target, "-t", tag, "-f", str(repo / "services" / "Dockerfile"), str(repo), timeout=3600)
    _log(f"{target} image from services/Dockerfile in {time.monotonic() - started:.0f} s")
    return tag
