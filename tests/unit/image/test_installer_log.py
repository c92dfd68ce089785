"""The installer's serial console: anaconda's progress as steps, its error lines found."""

from __future__ import annotations

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
import os, signal, subprocess, sys, time
serial, console = sys.argv[1], sys.argv[2]
with open(serial + ".pid", "a") as pids:
    pids.write(f"{os.getpid()}\\n")
if sys.argv[3] == "parent":  # like Packer's panicwrap wrapper: ignores SIGINT, ends with its child
    signal.signal(signal.SIGINT, lambda *_: None)  # caught and dropped (not SIG_IGN, inherited)
    code = open(serial + ".py").read()
    sys.exit(subprocess.run([sys.executable, "-c", code, serial, console, "child"]).returncode)
with open(serial, "a") as out:
    out.write("Starting installer, one moment...\\nStarting automated install.\\n")
    out.flush()
    time.sleep(0.5)
    out.write(console)
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
    (run.work / "serial.log.py").write_text(_CONSOLE_SCRIPT)
    command = sh.Command(sys.executable).bake(
        "-c",
        _CONSOLE_SCRIPT,
        str(run.work / "serial.log"),
        console,
        "parent",
        _ok_code=list(range(256)),
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
    pids = [int(line) for line in (run.work / "serial.log.pid").read_text().split()]
    assert len(pids) == 2  # the wrapper and its child
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
        time.sleep(0.1)  # the child is reaped by init; polling with a deadline
    assert not any(_alive(pid) for pid in pids), "the process group outlived the build"


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def test_error_in_reads_only_complete_messages() -> None:
    assert error_in(["The exact error message is:", "", "boom."]) == "boom."
    assert error_in(["The exact error message is:", ""]) is None
