"""Packer's machine-readable lines (taken from a real build's log) as steps and events."""

from __future__ import annotations

import io
import json
import time

import pytest

from builder.progress import Event, JsonProgress, parse_line, step_of

# From a real `packer build -machine-readable` of the stand-in (Packer 1.6.6).
LOG = """\
1795608603,,ui,say,==> qemu.centos7: Retrieving ISO
1795608604,,ui,say,==> qemu.centos7: Starting HTTP server on port 8472
1795608604,,ui,say,==> qemu.centos7: Found port for communicator (SSH%!(PACKER_COMMA) etc): 3110.
1795608604,,ui,say,==> qemu.centos7: Starting VM%!(PACKER_COMMA) booting from CD-ROM
1795608606,,ui,say,==> qemu.centos7: Waiting 10s for boot...
1795608616,,ui,say,==> qemu.centos7: Typing the boot command over VNC...
1795608628,,ui,say,==> qemu.centos7: Waiting for SSH to become available...
1795608692,,ui,say,==> qemu.centos7: Connected to SSH!
1795608692,,ui,say,==> qemu.centos7: Provisioning with shell script: /tmp/x/render/provision.sh
1795608693,,ui,message,    qemu.centos7: builder-provision: seal: slave
1795608694,,ui,say,==> qemu.centos7: Gracefully halting virtual machine...
1795608695,,ui,say,==> qemu.centos7: Converting hard drive...
1795608696,,ui,say,==> qemu.centos7: Running post-processor:  (type manifest)
"""


def test_real_log_becomes_steps_in_order() -> None:
    steps: list[str] = []
    for line in LOG.splitlines():
        parsed = parse_line(line)
        assert parsed is not None
        assert parsed.kind == "ui"
        step = step_of(parsed.data[1])
        if step and (not steps or steps[-1] != step):
            steps.append(step)
    assert steps == [
        "downloading ISO",
        "starting HTTP server",
        "booting",
        "waiting for boot",
        "typing boot command",
        "installing, waiting for SSH",
        "connected",
        "provisioning",
        "shutting down",
        "exporting",
    ]


def test_commas_are_restored() -> None:
    parsed = parse_line(LOG.splitlines()[3])
    assert parsed is not None
    assert parsed.data == ("say", "==> qemu.centos7: Starting VM, booting from CD-ROM")


@pytest.mark.parametrize("line", ["", "plain text", "==> qemu: x", "abc,,ui,say,x"])
def test_other_lines_are_not_events(line: str) -> None:
    assert parse_line(line) is None


def test_json_progress_writes_one_object_per_line() -> None:
    out = io.StringIO()
    progress = JsonProgress(out)
    progress.emit(Event("slave", "step", "booting", 1.25))
    progress.emit(Event("slave", "message", "noise", 2.0))
    progress.emit(Event("slave", "done", "output/slave", 90.0))
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
