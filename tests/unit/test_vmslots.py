"""The host's VM slots (tests/integration/vmslots.py): a request waits until enough are
free, slots already held count, a request for several is not overtaken."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from tests.integration import vmslots
from tests.integration.vmslots import SLOTS, vm_slots

WAIT = 60.0  # the most a step here may take on a loaded host


@pytest.fixture(autouse=True)
def slot_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(vmslots, "SLOT_DIR", tmp_path)
    monkeypatch.setattr(vmslots, "POLL_SECONDS", 0.05)
    return tmp_path


def _is_free(lock: Path) -> bool:
    """Whether no one holds `lock`, by trying it (and letting go at once)."""
    fd = vmslots._try_lock(lock)
    if fd is None:
        return False
    os.close(fd)
    return True


def _free(directory: Path) -> int:
    return sum(_is_free(directory / f"slot-{slot}") for slot in range(SLOTS))


def _until(predicate: object) -> None:
    end = time.monotonic() + WAIT
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < end, "no change within the wait"
        time.sleep(0.01)  # polling, not a timing assertion


def test_slots_are_held_for_the_block_and_freed_after(slot_dir: Path) -> None:
    with vm_slots(3):
        assert _free(slot_dir) == SLOTS - 3
    assert _free(slot_dir) == SLOTS


def test_a_slot_given_back_early_is_free_and_not_freed_twice(slot_dir: Path) -> None:
    with vm_slots(3) as held:
        held.release()
        assert _free(slot_dir) == SLOTS - 2
        with vm_slots(1):  # the slot given back serves another test at once
            assert _free(slot_dir) == SLOTS - 3
        held.release()
        held.release()
        assert _free(slot_dir) == SLOTS
        with pytest.raises(ValueError, match="no slot left"):
            held.release()
    assert _free(slot_dir) == SLOTS


def test_a_request_waits_until_enough_slots_are_free(slot_dir: Path) -> None:
    release = threading.Event()
    entered = threading.Event()

    def holder() -> None:
        with vm_slots(SLOTS - 1):
            entered.set()
            release.wait(WAIT)

    def cluster() -> None:
        with vm_slots(2):
            entered.set()

    first = threading.Thread(target=holder)
    first.start()
    assert entered.wait(WAIT)
    entered.clear()
    second = threading.Thread(target=cluster)
    second.start()
    # The request took the one free slot and waits for a second: it cannot have entered.
    _until(lambda: _free(slot_dir) == 0)
    assert not entered.is_set()
    release.set()
    assert entered.wait(WAIT)
    first.join(WAIT)
    second.join(WAIT)
    assert _free(slot_dir) == SLOTS


def test_a_later_single_request_does_not_overtake_a_waiting_one(slot_dir: Path) -> None:
    order: list[str] = []
    release = threading.Event()

    def take(name: str, count: int, hold: threading.Event | None = None) -> None:
        with vm_slots(count):
            order.append(name)
            if hold is not None:
                hold.wait(WAIT)

    holder = threading.Thread(target=take, args=("holder", SLOTS, release))
    holder.start()
    _until(lambda: order == ["holder"])
    big = threading.Thread(target=take, args=("big", SLOTS))
    big.start()
    # `big` holds the gate while it waits: wait until it does, then queue a single VM.
    _until(lambda: not _is_free(slot_dir / "gate"))
    small = threading.Thread(target=take, args=("small", 1))
    small.start()
    release.set()
    for thread in (holder, big, small):
        thread.join(WAIT)
    assert order == ["holder", "big", "small"]


@pytest.mark.parametrize("count", [0, SLOTS + 1])
def test_a_request_the_host_cannot_hold_is_refused(count: int) -> None:
    with (
        pytest.raises(ValueError, match=f"{count} VMs: the host runs 1 to {SLOTS}"),
        vm_slots(count),
    ):
        pass
