"""A memory stressor placed in a replica's memory cgroup, as Chaos Mesh's StressChaos memory stressor is placed in a
container's: it joins the cgroup, makes itself unkillable by the OOM killer where it may (oom_score_adj -1000,
Chaos Mesh's `oomScoreAdj`; the fault also makes the replica the OOM killer's first choice) and takes memory in
steps, so that the cgroup goes over its limit and the kernel kills the replica.
It holds what it took until its TTL ends or it is ended.

    python -m chaoslab.kernel.hog --cgroup /sys/fs/cgroup/memory/chaoslab-18000/notifications-1-F3 --mb 64 --ttl-s 60
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path

STEP_MB = 4
STEP_S = 0.05
PAGE = 4096


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaoslab.kernel.hog", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cgroup", type=Path, required=True)
    parser.add_argument("--mb", type=int, required=True)
    parser.add_argument("--ttl-s", type=float, required=True)
    args = parser.parse_args(argv)
    with contextlib.suppress(OSError):  # lowering it needs CAP_SYS_RESOURCE; the replica is made the victim anyway
        Path("/proc/self/oom_score_adj").write_text("-1000")
    (args.cgroup / "cgroup.procs").write_text(str(os.getpid()))
    held: list[bytearray] = []
    started = time.monotonic()
    for _ in range(0, args.mb, STEP_MB):
        chunk = bytearray(STEP_MB * 1024 * 1024)
        for offset in range(0, len(chunk), PAGE):  # touch every page: charged to the cgroup
            chunk[offset] = 1
        held.append(chunk)
        time.sleep(STEP_S)
    while time.monotonic() - started < args.ttl_s:
        time.sleep(0.5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
