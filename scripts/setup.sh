#!/usr/bin/env bash
# Idempotent set-up: the Debian packages the native lab runs (when missing and apt-get is there), a
# virtual environment in .venv with the pinned Python packages, and chaoslab itself (editable).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 || missing+=(prometheus-alertmanager)
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || missing+=(rabbitmq-server)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)   # offline compose validation
# The container test (tests/containers): podman on the runc runtime, netavark and aardvark-dns (container networks
# and their DNS), iptables (netavark's firewall), debootstrap (the images' Debian base; no registry is needed).
command -v podman >/dev/null 2>&1 || missing+=(podman)
command -v runc >/dev/null 2>&1 || missing+=(runc)
[ -x /usr/lib/podman/netavark ] || missing+=(netavark)
[ -x /usr/lib/podman/aardvark-dns ] || missing+=(aardvark-dns)
[ -x /usr/sbin/iptables ] || missing+=(iptables)
[ -x /usr/sbin/debootstrap ] || missing+=(debootstrap)
# The isolated lab and its faults below the application (chaoslab up --network isolated): stress-ng (host pressure),
# libfaketime (a replica's own clock), libnetfilter-queue-dev and a C compiler with Python's headers (NetfilterQueue
# is built from source: packet delay through NFQUEUE), e2fsprogs (the services' data disks), util-linux (nsenter).
command -v stress-ng >/dev/null 2>&1 || missing+=(stress-ng)
compgen -G "/usr/lib/*/faketime/libfaketime.so.1" >/dev/null || missing+=(libfaketime)
[ -e /usr/include/libnetfilter_queue/libnetfilter_queue.h ] || missing+=(libnetfilter-queue-dev)
command -v gcc >/dev/null 2>&1 || missing+=(gcc)
[ -e /usr/include/python3.11/Python.h ] || missing+=(python3.11-dev)
command -v mkfs.ext4 >/dev/null 2>&1 || missing+=(e2fsprogs)
command -v nsenter >/dev/null 2>&1 || missing+=(util-linux)
if [ ${#missing[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1; then
    sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    echo "setup: installing Debian packages: ${missing[*]}"
    $sudo apt-get update -qq
    # The packages try to start system services; without an init system that is refused, harmlessly.
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: missing ${missing[*]} and no apt-get here: install them with your package manager" >&2
    exit 1
  fi
fi

python=""
for candidate in python3.11 python3; do
  if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    python="$candidate"; break
  fi
done
if [ -z "$python" ]; then
  echo "setup: chaoslab needs Python 3.11 (its pins resolve there); install python3.11 and python3.11-venv" >&2
  exit 1
fi
[ -x .venv/bin/python ] || "$python" -m venv .venv
stamp=.venv/.chaoslab-installed
if [ ! -f "$stamp" ] || ! cmp -s requirements.lock "$stamp" || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing Python packages into .venv (pinned in requirements.lock)"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -r requirements.lock
  .venv/bin/pip install -q --no-deps -e .
  cp requirements.lock "$stamp"
fi
echo "setup: ready (.venv, prometheus $(prometheus --version 2>&1 | head -1 | awk '{print $3}'), rabbitmq-server)"
