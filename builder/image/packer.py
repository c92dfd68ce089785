"""Packer, driven through the python-packer wrapper.

python-packer (0.1.2, pinned; it pins sh==1.11) builds Packer's argument list
and runs it. What it does not do is done here: its `validate()` breaks on
Python 3 when Packer fails (it reads `exc.message`) and its `build()` has no
`-on-error`, so both commands are assembled with its own helpers
(`_add_opt`, `_append_base_arguments`) and run as its baked sh command,
which accepts every exit code so we read it ourselves. It also passes the
whole environment to Packer: we give it ours (minimal, with
CHECKPOINT_DISABLE so Packer never calls home). Commands are logged as typed.

`packer build -machine-readable` prints `TIME,TARGET,TYPE,DATA...` lines, with
commas in the data written as `%!(PACKER_COMMA)`. `parse_line` reads one;
`step_of` names the step a `ui` message starts (downloading the ISO, booting,
typing the boot command, installing, provisioning, shutting down, exporting);
`PackerLog` keeps every line in the build log and sends the steps as progress
events.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from builder import proc
from builder.errors import UserError
from builder.progress import Event, EventKind, Progress
from builder.render.packer_template import PackerVars

log = logging.getLogger("builder.packer")

PACKER_ENV = {"CHECKPOINT_DISABLE": "1", "PACKER_NO_COLOR": "1"}

# Packer's ui messages (1.6 and later) -> the step they start.
STEPS: tuple[tuple[str, str], ...] = (
    ("Retrieving ISO", "downloading ISO"),
    ("Creating required virtual machine disks", "creating disk"),
    ("Creating hard drive", "creating disk"),
    ("Starting HTTP server", "starting HTTP server"),
    ("Starting VM, booting from CD-ROM", "booting"),
    ("Waiting for SSH to become available", "installing, waiting for SSH"),
    ("Waiting ", "waiting for boot"),
    ("Typing the boot command", "typing boot command"),
    ("Connected to SSH", "connected"),
    ("Provisioning with shell script", "provisioning"),
    ("Gracefully halting virtual machine", "shutting down"),
    ("Converting hard drive", "exporting"),
    ("Running post-processor", "exporting"),
    ("Launching a source AWS instance", "launching instance"),
    ("Creating AMI", "creating AMI"),
)


@dataclass(frozen=True)
class PackerRun:
    argv: tuple[str, ...]
    returncode: int
    output: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


@dataclass(frozen=True)
class PackerLine:
    timestamp: str
    target: str
    kind: str
    data: tuple[str, ...]


def parse_line(line: str) -> PackerLine | None:
    """One machine-readable line, or None for anything else."""
    parts = line.rstrip("\n").split(",")
    if len(parts) < 3 or not parts[0].isdigit():
        return None
    data = tuple(part.replace("%!(PACKER_COMMA)", ",").replace("\\n", "\n") for part in parts[3:])
    return PackerLine(parts[0], parts[1], parts[2], data)


def step_of(message: str) -> str | None:
    text = message.split(": ", 1)[-1]
    for prefix, step in STEPS:
        if text.startswith(prefix) or f"==> {prefix}" in message:
            return step
    return None


@dataclass
class PackerLog:
    """Packer's lines: into the build log, and as progress events."""

    path: Path
    build: str
    progress: Progress
    started: float
    lines: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    step: str = ""

    def __call__(self, line: str) -> None:
        with self.lock, self.path.open("a", encoding="utf-8") as handle:
            handle.write(line if line.endswith("\n") else line + "\n")
        parsed = parse_line(line)
        if parsed is None or parsed.kind != "ui" or len(parsed.data) < 2:
            return
        level, message = parsed.data[0], parsed.data[1].strip()
        self.lines.append(message)
        if level == "error":
            self._emit(EventKind.ERROR, message)
            return
        step = step_of(message)
        if step and step != self.step:
            self.step = step
            self._emit(EventKind.STEP, step)
        else:
            self._emit(EventKind.MESSAGE, message)

    def _emit(self, kind: EventKind, detail: str) -> None:
        self.progress.emit(Event(self.build, kind, detail, time.monotonic() - self.started))

    def tail(self, count: int) -> list[str]:
        """The last `count` non-blank lines of Packer's messages."""
        text = [line for entry in self.lines for line in entry.splitlines() if line.strip()]
        return text[-count:]


def parse_version(text: str) -> tuple[int, int, int]:
    match = re.search(r"(\d+)\.(\d+)\.(\d+)", text)
    if match is None:
        raise UserError(f"cannot read a Packer version from {text.strip()!r}")
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def installed_version() -> tuple[int, int, int] | None:
    """The installed Packer's version, or None when there is no packer."""
    try:
        result = proc.run(["packer", "version"], env=PACKER_ENV, timeout=60)
    except proc.ToolMissing:
        return None
    return parse_version(result.stdout)


def _sh_compatibility() -> None:
    """sh 1.11 (pinned by python-packer) inspects output callbacks with
    inspect.getargspec, removed in Python 3.11; it reads only `.args`, which
    getfullargspec gives too."""
    if not hasattr(inspect, "getargspec"):
        inspect.getargspec = inspect.getfullargspec  # type: ignore[attr-defined]


def packer_command(
    subcommand: str,
    template: Path,
    options: list[str],
    variables: PackerVars,
    var_file: Path | None,
    *,
    only: list[str] | None = None,
    env: Mapping[str, str] | None = None,
    out: Callable[[str], None] | None = None,
) -> Any:
    """python-packer's baked command for `packer SUBCOMMAND OPTIONS... TEMPLATE` (not run)."""
    _sh_compatibility()
    # python-packer installs a top-level module named `packer`.
    python_packer = importlib.import_module("packer")
    client = python_packer.Packer(
        str(template),
        vars=variables.arguments(),
        var_file=str(var_file) if var_file else None,
        exec_path=proc.require("packer"),
        only=only,
        out_iter=out,
        err_iter=out,
    )
    client.packer = client.packer.bake(
        _env=proc.minimal_env({**PACKER_ENV, **(env or {})}), _ok_code=list(range(256))
    )
    client.packer_cmd = getattr(client.packer, subcommand)
    for option in options:
        client._add_opt(option)
    client._append_base_arguments()
    client._add_opt(str(template))
    return client.packer_cmd


def validate(template: Path, variables: PackerVars, var_file: Path | None = None) -> PackerRun:
    """`packer validate` on one template file."""
    command = packer_command("validate", template, [], variables, var_file)
    argv = command_argv(command)
    log.debug("running: %s", proc.command_line(argv))
    result = command()
    output = _text(result.stdout) + _text(result.stderr)
    return PackerRun(argv, int(result.exit_code), proc.redact(output))


def build_command(
    template: Path,
    variables: PackerVars,
    var_file: Path,
    *,
    only: str,
    on_error: str,
    env: Mapping[str, str],
    out: Callable[[str], None] | None = None,
) -> Any:
    """`packer build -machine-readable -force -on-error=X -only=SOURCE ... TEMPLATE`."""
    return packer_command(
        "build",
        template,
        ["-machine-readable", "-force", f"-on-error={on_error}"],
        variables,
        var_file,
        only=[only],
        env=env,
        out=out,
    )


def command_argv(command: Any) -> tuple[str, ...]:
    """The exact argument list an sh 1.11 command object will run."""
    return (_text(command._path), *(_text(arg) for arg in command._partial_baked_args))


def _text(data: bytes | str) -> str:
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else data
