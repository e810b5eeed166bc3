"""Seeds: one number a run is given (`gameday --seed`, `chaos run --seed`, `chaos random --seed`) and the seeds
derived from it for each thing that draws at random, so that adding an experiment to a plan does not change what
the others draw.

An experiment runs in its own `chaos run` process; the seed reaches it as CHAOSLAB_SEED, and the extension's
"one replica, at random" (chaoslab.chaos.lab.select_replicas) draws from it instead of from the process' own
random state. Without a seed, choices are random as before.
"""

from __future__ import annotations

import hashlib
import os
import random

ENV = "CHAOSLAB_SEED"


def derive(seed: int, *names: object) -> int:
    """A seed of its own for `names` (an experiment, a fault), stable across runs, machines and Python versions
    (hash() of a str is not: it is salted per process)."""
    text = ":".join(str(n) for n in (seed, *names))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def from_env() -> int | None:
    value = os.environ.get(ENV, "").strip()
    try:
        return int(value) if value else None
    except ValueError:
        return None


def rng_for(*names: object) -> random.Random | None:
    """A generator for one choice (`names` says which) when the process was given a seed, else None."""
    seed = from_env()
    return None if seed is None else random.Random(derive(seed, *names))
