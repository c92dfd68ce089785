"""Where a run's CPU goes: the host's busy share and each QEMU guest's CPU seconds.

    .venv/bin/python bench/suite_load.py [--every 5] -- COMMAND...
    .venv/bin/python bench/suite_load.py -- env CI=true bash .ci/run

A profile of one run, not a benchmark: it runs COMMAND and, every --every seconds,
reads /proc/stat (the host's busy share) and every qemu-system process' CPU time
(utime + stime). Then it prints each guest (named by its serial log, the path the
tests give it: the test's or fixture's directory), the guests' CPU seconds summed per
test directory, their total against the host's, and the stretches when the host was
less than 80 % busy (CPU the schedule left unused). Under TCG a guest's CPU seconds are
the cost of what it ran; the run's wall time is bounded below by the total over the
host's cores. Exits with COMMAND's exit code.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
BUSY_ENOUGH = 0.8
PYTEST_DIR = re.compile(r"^/(?:var/)?tmp/pytest-of-\w+/pytest-\d+/(?:popen-gw\d+/)?")


@dataclass
class Guest:
    name: str
    first: float
    last: float = 0.0
    cpu: float = 0.0  # since the profile started (a guest already running counts from then)
    base: float = 0.0


def host_ticks() -> tuple[int, int]:
    """(all, idle + iowait) jiffies since boot."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(fields), fields[3] + fields[4]


def cpu_seconds(stat: str) -> float:
    """A process' user and system time from its /proc/PID/stat text (for QEMU: what
    the guest's vCPU and devices cost the host)."""
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def guest_name(argv: list[str]) -> str:
    """The serial log's path (`-serial file:PATH`, or Packer's), without pytest's base."""
    for arg in argv:
        if arg.startswith("file:"):
            return PYTEST_DIR.sub("", arg[len("file:") :])
    return " ".join(argv)[:80]


def sample(guests: dict[int, Guest], now: float) -> None:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if not (entry / "comm").read_text().startswith("qemu-system"):
                continue
            argv = (entry / "cmdline").read_text().split("\0")
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        pid = int(entry.name)
        guest = guests.setdefault(pid, Guest(guest_name(argv), now))
        guest.last = now
        guest.cpu = cpu_seconds(stat) - guest.base


def running_before(guests: dict[int, Guest]) -> None:
    """The guests that run already: only what they use from now on counts."""
    sample(guests, 0.0)
    for guest in guests.values():
        guest.base, guest.cpu = guest.cpu, 0.0


def report(guests: dict[int, Guest], busy: list[tuple[float, float]], wall: float) -> None:
    print(f"{'start':>6} {'end':>6} {'cpu-s':>7}  guest")
    for guest in sorted(guests.values(), key=lambda g: g.first):
        if guest.cpu >= 1:
            print(f"{guest.first:6.0f} {guest.last:6.0f} {guest.cpu:7.1f}  {guest.name}")
    groups: dict[str, list[float]] = defaultdict(list)
    for guest in guests.values():
        groups[guest.name.split("/", 1)[0]].append(guest.cpu)
    print(f"\n{'cpu-s':>7} {'VMs':>4}  test directory")
    for group, cpus in sorted(groups.items(), key=lambda kv: -sum(kv[1])):
        if sum(cpus) >= 1:
            print(f"{sum(cpus):7.0f} {len(cpus):4d}  {group}")
    cores = os.cpu_count() or 1
    mean = sum(share for _, share in busy) / max(len(busy), 1)
    total = sum(guest.cpu for guest in guests.values())
    print(
        f"\nwall {wall:.0f} s on {cores} cores; host busy {mean:.1%} "
        f"({mean * wall * cores:.0f} core-s); guests {total:.0f} core-s"
    )
    idle = [at for at, share in busy if share < BUSY_ENOUGH]
    print(f"samples under {BUSY_ENOUGH:.0%} busy: {len(idle)} of {len(busy)}", end="")
    print(f" (from {idle[0]:.0f} s to {idle[-1]:.0f} s)" if idle else "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--every", type=float, default=5.0, help="seconds between samples")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("a command to run is needed (after --)")
    guests: dict[int, Guest] = {}
    busy: list[tuple[float, float]] = []
    running_before(guests)
    started = time.monotonic()
    process = subprocess.Popen(command)
    before = host_ticks()
    while process.poll() is None:
        time.sleep(args.every)  # the sampling period, not a timing assertion
        now = time.monotonic() - started
        sample(guests, now)
        after = host_ticks()
        ticks, idle = after[0] - before[0], after[1] - before[1]
        busy.append((now, 1 - idle / max(ticks, 1)))
        before = after
    report(guests, busy, time.monotonic() - started)
    return process.returncode


if __name__ == "__main__":
    sys.exit(main())
