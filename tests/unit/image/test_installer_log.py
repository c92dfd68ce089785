"""The installer's serial console: anaconda's progress as steps, its error lines found."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from builder.config.load import LoadedConfig
from builder.config.roles import compose
from builder.errors import BuildFailed
from builder.image import build
from builder.image.installer_log import InstallerLog, error_in
from builder.image.packer import PackerLog
from builder.progress import EventKind
from builder.render.packer_template import PackerVars
from tests.unit.image.test_build import Recorder

CMDLINE_STOP = """
The installation was stopped due to an error which occurred while running in non-interactive \
cmdline mode. Since there cannot be any questions in cmdline mode, edit your kickstart file and \
retry installation.
The exact error message is:{trailing}

{}

The installer will now terminate.
"""
REPO = (
    "Cannot retrieve repository metadata (repomd.xml) for repository: mesosphere. "
    "Please verify its path and try again"
)
PACKAGE = (
    "You have specified that the package 'mesos-dns' should be installed.  This package does "
    "not exist. Would you like to ignore this package and continue with installation?"
)
ESP = (
    "For a UEFI installation, you must include an EFI System Partition on a GPT-formatted "
    "disk, mounted at /boot/efi."
)
POST = (
    "There was an error running the kickstart script at line 52.  This is a fatal error and "
    "installation will be aborted.  The details of this error are: exit 3"
)


@pytest.mark.parametrize(
    ("console", "error"),
    [
        (CMDLINE_STOP.format(REPO, trailing=" "), REPO),
        (CMDLINE_STOP.format(PACKAGE, trailing=" "), PACKAGE),
        (
            f"storage configuration failed: {ESP}\n" + CMDLINE_STOP.format(ESP, trailing=" "),
            f"storage configuration failed: {ESP}",
        ),
        (CMDLINE_STOP.format(POST, trailing=" "), POST),
        (
            "The following problem occurred on line 29 of the kickstart file:\n\n"
            "Unknown command: skipxx\n",
            "kickstart line 29: Unknown command: skipxx",
        ),
        # text mode: anaconda asks instead of stopping; the question is the error
        (
            "Generating updated storage configuration\nstorage configuration failed:\n"
            "    Unable to allocate requested partition scheme.\n",
            "storage configuration failed: Unable to allocate requested partition scheme.",
        ),
        (f"{PACKAGE}\nPlease respond 'yes' or 'no': \n", PACKAGE),
    ],
    ids=["repo", "package", "storage", "post", "kickstart", "text-storage", "text-question"],
)
def test_the_installers_error_line(console: str, error: str) -> None:
    log = InstallerLog(Path("unused"))
    log.feed("Starting installer, one moment...\nStarting automated install.\n")
    assert log.error is None
    log.feed(console)
    assert log.error == error


@pytest.mark.parametrize(
    "console",
    [
        "Installing boot loader\nInstallation complete.\n",
        "Would you like to ignore",  # no newline yet: not a line
        "The exact error message is: \n\n",  # the message has not arrived
        "The following problem occurred on line 3 of the kickstart file:\n",
    ],
)
def test_no_error_before_the_installer_says_one(console: str) -> None:
    log = InstallerLog(Path("unused"))
    log.feed(console)
    assert log.error is None


def test_progress_lines_become_steps_once_and_half_lines_wait(tmp_path: Path) -> None:
    serial = tmp_path / "serial.log"
    log = InstallerLog(serial)
    assert log.poll() == []  # no file yet: QEMU has not started
    serial.write_bytes(
        b"\x1b[0mStarting installer, one moment...\r\nanaconda 21.48 started.\nChecking soft"
    )
    assert log.poll() == ["installer: starting"]
    with serial.open("ab") as handle:
        handle.write(b"ware selection\nChecking software selection\nInstalling boot loader\n")
    assert log.poll() == ["installer: checking the software selection", "installer: boot loader"]
    assert log.error is None


_CONSOLE_SCRIPT = """
import os, sys, time
serial = sys.argv[1]
open(serial + ".pid", "w").write(str(os.getpid()))
with open(serial, "a") as out:
    out.write("Starting installer, one moment...\\nStarting automated install.\\n")
    out.flush()
    time.sleep(0.5)
    out.write(sys.argv[2])
    out.flush()
time.sleep(600)
"""


def test_an_installer_error_stops_packer_by_its_pid_within_seconds(
    loaded: LoadedConfig, tmp_path: Path
) -> None:
    """A stand-in for Packer (a process that writes the console, then would wait ten
    minutes) run the way the build runs Packer (sh, in the background): SIGINT by pid."""
    import sh

    roles = compose(loaded, ("slave",))
    run = build.BuildRun(
        loaded,
        roles,
        build.BuildOptions(output=tmp_path / "output"),
        (1, 6, 6),
        Recorder(),
        "sha256:" + "a" * 64,
        "d" * 64,
    )
    run.work = tmp_path / "work"
    run.work.mkdir()
    console = CMDLINE_STOP.format(REPO, trailing=" ")
    command = sh.Command(sys.executable).bake(
        "-c", _CONSOLE_SCRIPT, str(run.work / "serial.log"), console, _ok_code=list(range(256))
    )
    log = PackerLog(run.work / "build.log", "slave", run.progress, run.started)
    started = time.monotonic()
    with pytest.raises(BuildFailed) as failed:
        build._run_packer(run, command, log, PackerVars())
    assert time.monotonic() - started < 30
    assert failed.value.message == f"the installer stopped: {REPO}"
    assert failed.value.tail[-1] == "The installer will now terminate."
    assert isinstance(run.progress, Recorder)
    steps = [e.detail for e in run.progress.events if e.event is EventKind.STEP]
    assert steps == ["installer: starting", "installer: reading the kickstart"]
    pid = int((run.work / "serial.log.pid").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # gone (stopped by SIGINT, reaped), ten minutes early


def test_error_in_reads_only_complete_messages() -> None:
    assert error_in(["The exact error message is:", "", "boom."]) == "boom."
    assert error_in(["The exact error message is:", ""]) is None
