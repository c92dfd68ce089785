"""The one helper that runs programs: exact commands, minimal env, clear errors."""

from __future__ import annotations

import logging

import pytest

from builder import proc


def test_missing_program_names_its_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(proc.ToolMissing) as caught:
        proc.run(["packer", "version"])
    assert caught.value.message == "packer is not installed"
    assert caught.value.hint == "install it with: apt-get install packer"


def test_failure_carries_the_command_and_output() -> None:
    with pytest.raises(proc.ToolFailed) as caught:
        proc.run(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert caught.value.returncode == 3
    assert caught.value.command == "sh -c 'echo out; echo err >&2; exit 3'"
    assert "out" in caught.value.output
    assert "err" in caught.value.output
    assert caught.value.exit_code == 1
    assert caught.value.message == "sh failed with exit code 3: err"


def test_failure_ends_with_the_tools_own_error_line() -> None:
    xorriso = (
        "xorriso 1.5.4 : RockRidge filesystem manipulator\n"
        "xorriso : FAILURE : Cannot determine attributes of source file '/nope' : "
        "No such file or directory\n"
        "xorriso : aborting : -abort_on 'FAILURE' encountered 'FAILURE'\n"
    )
    assert proc.last_error_line(xorriso) == (
        "xorriso : FAILURE : Cannot determine attributes of source file '/nope' : "
        "No such file or directory"
    )
    damaged = (
        "libburn : SORRY : Read start address 2048s larger than number of readable blocks\n"
        "libisofs: MISHAP : Read error in file /padding.bin.\n"
        "libisofs: NOTE :  > Caused by: Read error occurred with IsoDataSource\n"
        "libisofs: MISHAP : Filling with 0\n"
        "xorriso : NOTE : -return_with SORRY 32 triggered by problem severity MISHAP\n"
    )
    assert proc.last_error_line(damaged) == "libisofs: MISHAP : Read error in file /padding.bin."
    assert proc.last_error_line("working\nstill working\n") == "still working"
    assert proc.last_error_line("") == ""


def test_timeout_is_its_own_error() -> None:
    with pytest.raises(proc.ToolTimedOut) as caught:
        proc.run(["sleep", "5"], timeout=0.2)
    assert caught.value.exit_code == 1


def test_child_gets_a_minimal_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "do-not-leak")
    monkeypatch.setenv("LANG", "de_DE.UTF-8")
    env = proc.run(["env"]).stdout.splitlines()
    assert "LANG=C" in env
    assert not any(line.startswith("AWS_SECRET_ACCESS_KEY") for line in env)


def test_logged_command_is_redacted(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="builder.proc")
    proc.run(["echo", "password=hunter2", "AKIAABCDEFGHIJKLMNOP"])
    assert "running: echo password=<redacted> <redacted-key-id>" in caplog.text
    assert "hunter2" not in caplog.text


def test_binary_output_keeps_stdout_as_bytes() -> None:
    """A keystore or DER file comes back byte for byte; as text it could not be decoded."""
    written = proc.run(["printf", "\\377\\000\\n"], binary_output=True)
    assert written.data == b"\xff\x00\n"
    assert written.stdout == ""
    echoed = proc.run(["cat"], input_text="fed on stdin", binary_output=True)
    assert echoed.data == b"fed on stdin"
    with pytest.raises(UnicodeDecodeError):
        proc.run(["printf", "\\377\\000\\n"])
    with pytest.raises(proc.ToolFailed, match="sh failed with exit code 3: err"):
        proc.run(["sh", "-c", "printf '\\377'; echo err >&2; exit 3"], binary_output=True)
