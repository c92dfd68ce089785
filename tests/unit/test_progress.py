"""Progress events: their kinds, as documented and as sent; the JSON and transfer displays."""

from __future__ import annotations

import io
import json
import re
import time
from pathlib import Path

import pytest

from builder.progress import Event, EventKind, JsonProgress

REPO = Path(__file__).resolve().parents[2]


def test_documented_event_kinds_are_the_kinds_sent() -> None:
    """README's --json line lists every kind a --json consumer can see, and each is sent."""
    readme = (REPO / "README.md").read_text()
    match = re.search(r"--json +# one JSON event per line: ([a-z, ]+)", readme)
    assert match is not None, "README.md documents the --json events"
    documented = {kind.strip() for kind in match.group(1).split(",")}
    assert documented == {str(kind) for kind in EventKind} - {"message"}
    code = "".join(
        path.read_text() for path in (REPO / "builder").rglob("*.py") if path.name != "progress.py"
    )
    unsent = [kind.name for kind in EventKind if f"EventKind.{kind.name}" not in code]
    assert unsent == []


def test_json_progress_writes_one_object_per_line() -> None:
    out = io.StringIO()
    progress = JsonProgress(out)
    progress.emit(Event("slave", EventKind.STEP, "booting", 1.25))
    progress.emit(Event("slave", EventKind.MESSAGE, "noise", 2.0))
    progress.emit(Event("slave", EventKind.DONE, "output/slave", 90.0))
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines == [
        {"build": "slave", "event": "step", "detail": "booting", "elapsed": 1.2},
        {"build": "slave", "event": "done", "detail": "output/slave", "elapsed": 90.0},
    ]


def test_transfer_progress_plain_lines_and_stall(capsys: pytest.CaptureFixture[str]) -> None:
    """Without a terminal: periodic plain lines in bytes and bytes/s, a stall notice when
    nothing moves, and a notice when it moves again."""
    from builder.progress import TransferProgress

    progress = TransferProgress("upload snap-1", 4 * 1024**2, interval=0.05, stall=0.0)
    progress.items_total = 8
    seen = ""
    deadline = time.monotonic() + 60
    while "stalled: nothing moved" not in seen and time.monotonic() < deadline:
        time.sleep(0.05)
        seen += capsys.readouterr().err
    progress.advance(2 * 1024**2, items=4)
    progress.close()
    seen += capsys.readouterr().err
    assert "upload snap-1: stalled: nothing moved for 0 s" in seen
    assert "upload snap-1: moving again" in seen
    assert "upload snap-1: 2.0 MiB of 4.0 MiB (50%), " in seen
    assert seen.rstrip().endswith("4/8 blocks done")
    assert "MiB/s" in seen
