"""chaoslab: an observability and chaos-testing lab for microservices."""

from __future__ import annotations

from typing import Any


def discover(discover_system: bool = True) -> dict[str, Any]:
    """`chaos discover chaoslab` imports the distribution's top-level package and calls its discover(): the
    Chaos Toolkit extension itself lives in chaoslab.chaos (imported here only when asked, so that importing
    chaoslab stays free of Chaos Toolkit)."""
    from chaoslab.chaos import discover as discover_extension

    return discover_extension(discover_system)
