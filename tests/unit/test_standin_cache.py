"""The stand-in cache's housekeeping (tests/integration/standin.py): builds of other
digests that no run used for UNUSED_FOR go, the one in use and recent ones stay."""

from __future__ import annotations

import os
import time
from pathlib import Path

from tests.integration.standin import UNUSED_FOR, _prune, _used


def _aged(path: Path, seconds: float) -> Path:
    then = time.time() - seconds
    os.utime(path, (then, then))
    return path


def test_unused_stand_ins_go_and_the_one_in_use_stays(tmp_path: Path) -> None:
    old, recent, current = (tmp_path / name for name in ("old", "recent", "current"))
    for directory in (old, recent, current):
        directory.mkdir()
        (directory / "node.raw").write_bytes(b"disk")
    _aged(old, UNUSED_FOR + 60)
    _aged(recent, UNUSED_FOR - 600)
    _aged(current, UNUSED_FOR * 10)
    (tmp_path / ".build-x").mkdir()  # another worker's build under way
    _aged(tmp_path / ".build-x", UNUSED_FOR * 10)
    _used(current)
    _prune(tmp_path, "*")
    assert sorted(path.name for path in tmp_path.iterdir()) == [".build-x", "current", "recent"]
    assert current.stat().st_mtime > time.time() - 60  # marked as used now


def test_an_unused_configured_image_goes_with_its_conversion(tmp_path: Path) -> None:
    for name in ("slave-old", "slave-new"):
        for suffix in (".raw", ".qcow2"):
            (tmp_path / f"{name}{suffix}").write_bytes(b"image")
    _aged(tmp_path / "slave-old.raw", UNUSED_FOR + 60)
    _prune(tmp_path, "*.raw")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["slave-new.qcow2", "slave-new.raw"]
