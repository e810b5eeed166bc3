"""Faults below the application, through the kernel and real tools, for an isolated lab
(`chaoslab up --network isolated`, chaoslab.lab.network).

- net: blackhole (DROP: a connection hangs), reject (TCP reset), random loss (statistic), delay and jitter (NFQUEUE
  and the delayq worker), a partition, the broker cut off: rules in the lab's chains, per edge, service or replica;
  and a bandwidth cap on a host's link (htb on both ends, the observer's ports exempt). Attested by a connection
  from the source's namespace that hangs, is reset or is measured late, and by the rules' and qdiscs' counters.
- resources: a memory limit the kernel enforces (cgroup v1 memory, with a co-located stressor: OOM kill), CPU
  throttling (cgroup v1 cpu quota), host pressure (stress-ng). Attested by memory.oom_control's oom_kill and a new
  pid, cpu.stat's throttling counters, /proc/pressure.
- disk: a full disk under one service's data (its size-limited disk, chaoslab.lab.disks). Attested by statvfs and
  ENOSPC from the service.
- clock: one replica's clock moved or running fast (libfaketime, preloaded into every replica of an isolated lab).
  Attested by the replica's own Date header.

Every fault is a record in the lab's fault store (store.py) with a TTL and the kernel objects it made; removal
works from the record alone and is idempotent. The endpoints controller (a supervisord program of the lab) ends
the faults whose TTL ran out even when the process that injected them died; `chaoslab faults --clear` ends them
all, and `chaoslab down` removes everything of the lab by name (inventory.py), records or not.

Modules:

- attest.py     each fault shown to have taken effect, measured from outside the code under test
- clock.py      one replica's clock moved or running fast (libfaketime)
- delayq.py     the NFQUEUE delay worker: holds each packet for a delay with jitter
- faults.py     injecting the faults: their kernel objects, each fault recorded in the store
- hog.py        a memory stressor placed in a replica's memory cgroup (as Chaos Mesh's)
- inventory.py  what the kernel holds for a lab's faults, found by name, and sweeping it
- store.py      the fault records (STATE/kernel/faults.json): TTL and the kernel objects made
"""
