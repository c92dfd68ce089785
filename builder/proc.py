"""The one helper that runs external programs.

Argument lists only (never a shell), a minimal environment with LANG=C, the
exact command logged ready to copy (secrets redacted), and a missing binary
turned into a user error that names the Debian package to install.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from builder.errors import BuilderError, UserError

log = logging.getLogger("builder.proc")

# Debian 12 package for each program we run.
PACKAGES: Mapping[str, str] = {
    "packer": "packer",
    "qemu-system-x86_64": "qemu-system-x86",
    "qemu-img": "qemu-utils",
    "xorriso": "xorriso",
    "mcopy": "mtools",
    "mdir": "mtools",
    "createrepo_c": "createrepo-c",
    "implantisomd5": "isomd5sum",
    "checkisomd5": "isomd5sum",
    "cloud-init": "cloud-init",
    "cloud-localds": "cloud-image-utils",
    "ssh-keygen": "openssh-client",
    "debugfs": "e2fsprogs",
    "openssl": "openssl",
    "keytool": "openjdk-17-jre-headless",
}

_PASSED_THROUGH = ("PATH", "HOME", "TMPDIR", "XDG_CACHE_HOME", "USER", "LOGNAME")
_SECRET_WORDS = re.compile(
    r"(?i)(aws_secret_access_key|aws_session_token|password|passwd|secret)(=|\s+)(\S+)"
)
_AWS_KEY_ID = re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b")
# user:password@ in a URL (a repository behind basic authentication)
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s]+@")


class ToolMissing(UserError):
    def __init__(self, program: str) -> None:
        package = PACKAGES.get(program, program)
        super().__init__(
            f"{program} is not installed",
            hint=f"install it with: apt-get install {package}",
        )
        self.program = program
        self.package = package


class ToolFailed(BuilderError):
    """A program exited non-zero: exit 1, ending with the program's own last error line."""

    def __init__(self, command: str, returncode: int, output: str) -> None:
        program = shlex.split(command)[0] if command else "command"
        reason = last_error_line(output)
        message = f"{Path(program).name} failed with exit code {returncode}"
        super().__init__(f"{message}: {reason}" if reason else message)
        self.command = command
        self.returncode = returncode
        self.output = output

    def lines(self) -> list[str]:
        return [f"error: {self.message}", f"  command: {self.command}"]


class ToolTimedOut(BuilderError):
    def __init__(self, command: str, seconds: float) -> None:
        super().__init__(f"command timed out after {seconds:g} s: {command}")
        self.command = command
        self.seconds = seconds


# A line that says what went wrong ...
_ERROR_WORDS = re.compile(
    r"(?i)\b(error|failure|failed|fatal|cannot|can't|unable|no such|denied)\b"
)
# ... and lines that only comment on it: xorriso's notes, hints and closing lines.
_NOT_THE_ERROR = re.compile(r"\b(NOTE|HINT|UPDATE|WARNING) :|aborting|-return_with")


def last_error_line(output: str) -> str:
    """The program's own last error line: the last line that says what went wrong,
    else its last line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in reversed(lines):
        if _ERROR_WORDS.search(line) and not _NOT_THE_ERROR.search(line):
            return line
    return lines[-1] if lines else ""


def redact(text: str) -> str:
    """Hide passwords, URL credentials and AWS credentials in a string meant for a log."""
    text = _SECRET_WORDS.sub(lambda m: f"{m.group(1)}{m.group(2)}<redacted>", text)
    text = _URL_USERINFO.sub(lambda m: f"{m.group(1)}<redacted>@", text)
    return _AWS_KEY_ID.sub("<redacted-key-id>", text)


def without_userinfo(url: str) -> str:
    """The URL with no `user:password@` (what a check compares when the other side may
    show credentials, mask them or leave them out)."""
    return _URL_USERINFO.sub(lambda m: m.group(1), url)


def command_line(argv: Sequence[str]) -> str:
    """The command as a person would type it, secrets redacted."""
    return redact(shlex.join(argv))


def minimal_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {name: os.environ[name] for name in _PASSED_THROUGH if name in os.environ}
    env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    env["LANG"] = "C"
    env["LC_ALL"] = "C"
    if extra:
        env.update(extra)
    return env


def require(program: str) -> str:
    """The full path of a program, or a ToolMissing error naming its package."""
    path = shutil.which(program, path=minimal_env()["PATH"])
    if path is None:
        raise ToolMissing(program)
    return path


@dataclass(frozen=True)
class Result:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    # stdout as the program wrote it, when run with binary_output (stdout is then "")
    data: bytes = b""

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run(
    argv: Sequence[str],
    *,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float | None = None,
    input_text: str | None = None,
    binary_output: bool = False,
) -> Result:
    """Run a program and capture its output; raise ToolFailed when check and it fails.

    With binary_output, stdout is kept as bytes (`Result.data`: a DER file, a keystore)
    and only stderr is decoded."""
    if not argv:
        raise ValueError("empty command")
    program = require(argv[0])
    line = command_line(argv)
    log.debug("running: %s", line)
    stdin: str | bytes | None = input_text
    if binary_output and input_text is not None:
        stdin = input_text.encode()
    try:
        done = subprocess.run(
            [program, *argv[1:]],
            env=minimal_env(env),
            cwd=cwd,
            timeout=timeout,
            input=stdin,
            capture_output=True,
            text=not binary_output,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ToolTimedOut(line, timeout or 0) from exc
    if binary_output:
        stderr = done.stderr.decode(errors="replace")
        result = Result(tuple(argv), done.returncode, "", stderr, done.stdout)
    else:
        result = Result(tuple(argv), done.returncode, done.stdout, done.stderr)
    if check and result.returncode != 0:
        # stderr first: a tool's own error line is there, stdout may be data.
        raise ToolFailed(line, result.returncode, redact(result.stdout + result.stderr))
    return result
