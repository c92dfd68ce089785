"""Packer's machine-readable lines (taken from a real build's log) as steps and events."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from builder.image.packer import PackerLog, parse_line, step_of
from builder.progress import Event, EventKind

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


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def close(self) -> None:
        pass


def test_packer_log_keeps_every_line_and_sends_steps_and_errors(tmp_path: Path) -> None:
    recorder = Recorder()
    log = PackerLog(tmp_path / "build.log", "slave", recorder, time.monotonic())
    lines = [*LOG.splitlines()[:2], "not machine-readable", "1795608700,,ui,error,Build failed"]
    for line in lines:
        log(line)
    assert (tmp_path / "build.log").read_text().splitlines() == lines
    assert [(e.event, e.detail) for e in recorder.events] == [
        (EventKind.STEP, "downloading ISO"),
        (EventKind.STEP, "starting HTTP server"),
        (EventKind.ERROR, "Build failed"),
    ]
    assert log.tail(2) == ["==> qemu.centos7: Starting HTTP server on port 8472", "Build failed"]
