"""Write compose/.env from compose/.env.example with every secret random and new: the database and RabbitMQ
passwords, the admin API's token, the shop admin's password (BOOTSTRAP_ADMIN, which auth refuses when it is
guessable) and Grafana's. The file is git-ignored and private (0600); everything else is the example's.

    python compose/credentials.py            # write compose/.env (refuses to overwrite it)
    python compose/credentials.py --force    # new secrets (then: docker compose ... up -d, to restart with them)

Passwords go into connection URLs: they are URL-safe (letters, digits, - and _).
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from collections.abc import Mapping
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXAMPLE = HERE / ".env.example"
ENV_FILE = HERE / ".env"
PLACEHOLDER = "change-me"


def secret_for(key: str, example_value: str) -> str:
    """A fresh value for a placeholder of the example; BOOTSTRAP_ADMIN keeps its email."""
    if key == "BOOTSTRAP_ADMIN":
        email = example_value.split(":", 1)[0]
        return f"{email}:{secrets.token_urlsafe(18)}"
    return secrets.token_urlsafe(24)


def render(example: str, overrides: Mapping[str, str] | None = None) -> tuple[str, dict[str, str]]:
    """The example's text with each placeholder replaced and `overrides` applied; and the settings it holds."""
    overrides = overrides or {}
    lines, settings = [], {}
    for line in example.splitlines():
        if "=" not in line or line.lstrip().startswith("#"):
            lines.append(line)
            continue
        key, value = line.split("=", 1)
        if key in overrides:
            value = overrides[key]
        elif PLACEHOLDER in value:
            value = secret_for(key, value)
        settings[key] = value
        lines.append(f"{key}={value}")
    return "\n".join(lines) + "\n", settings


def write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o600)  # an existing file keeps its mode through O_CREAT


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python compose/credentials.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--force", action="store_true", help="replace an existing compose/.env")
    args = parser.parse_args(argv)
    if ENV_FILE.exists() and not args.force:
        print(f"{ENV_FILE} exists: keep it, or make new secrets with --force", file=sys.stderr)
        return 1
    text, settings = render(EXAMPLE.read_text(encoding="utf-8"))
    write_private(ENV_FILE, text)
    admin = settings.get("BOOTSTRAP_ADMIN", ":").split(":", 1)[0]
    print(f"wrote {ENV_FILE} (0600; the shop admin is {admin}, its password is in the file)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
