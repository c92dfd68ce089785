"""How many test VMs run at once on this host, across pytest-xdist's workers.

Under TCG a guest's vCPU is a host thread that keeps a core busy while the guest works.
With each worker starting VMs as its module needs them, the suite ran up to six guests on
the 2 cores: a slave stand-in then took 333 s to reach cloud-init's first stage (45 s for
one booted beside fewer) and the three-master cluster missed `builder up`'s 1200 s
deadline. So a test holds one slot per VM it runs, SLOTS in all on the host: a slot is a
file locked with flock(2) under the temporary directory (a worker that dies frees its
slots), and slots are handed out in turn behind a gate, so a request for several (a
cluster's nodes) is not overtaken by single VMs.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SLOTS = 4  # two guests per core: each still boots within the tests' deadlines
SLOT_DIR = Path(tempfile.gettempdir()) / "builder-test-vm-slots"
POLL_SECONDS = 2.0  # while waiting for a slot another test holds


def _try_lock(path: Path) -> int | None:
    """An open descriptor holding `path`'s lock, or None if another holds it (this
    process's other descriptors included: flock locks belong to the open file)."""
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


class HeldSlots:
    """The slots a `vm_slots` block holds."""

    def __init__(self, descriptors: list[int]) -> None:
        self._descriptors = descriptors

    def release(self) -> None:
        """Give one back before the block ends: a VM of the block has stopped for good
        (it must not start again, which would take a slot the block no longer holds)."""
        if not self._descriptors:
            raise ValueError("no slot left to release")
        os.close(self._descriptors.pop())


@contextmanager
def vm_slots(count: int) -> Iterator[HeldSlots]:
    """Hold `count` of the host's VM slots for the block, waiting for them in turn."""
    if not 0 < count <= SLOTS:
        raise ValueError(f"{count} VMs: the host runs 1 to {SLOTS} test VMs at once")
    SLOT_DIR.mkdir(mode=0o700, exist_ok=True)
    held: list[int] = []
    gate = os.open(SLOT_DIR / "gate", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(gate, fcntl.LOCK_EX)  # blocks: whoever came first takes slots first
        while len(held) < count:
            for slot in range(SLOTS):
                if len(held) < count and (fd := _try_lock(SLOT_DIR / f"slot-{slot}")) is not None:
                    held.append(fd)
            if len(held) < count:
                time.sleep(POLL_SECONDS)
        os.close(gate)
        gate = -1
        yield HeldSlots(held)
    finally:
        for fd in held:
            os.close(fd)
        if gate != -1:
            os.close(gate)
