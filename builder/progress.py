"""Build progress: Packer's machine-readable output as steps, for people or for CI.

`packer build -machine-readable` prints `TIME,TARGET,TYPE,DATA...` lines, with
commas in the data written as `%!(PACKER_COMMA)`. `parse_line` turns the
`ui` messages into steps (downloading the ISO, booting, typing the boot
command, installing, provisioning, shutting down, exporting); two
implementations of `Progress` show them: `ConsoleProgress` (rich, one status
line per build) and `JsonProgress` (one JSON event per line, for CI systems).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TextIO

if TYPE_CHECKING:
    from rich.table import Table

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


@dataclass(frozen=True)
class Event:
    build: str
    event: str  # start, step, message, error, done, cached, failed
    detail: str = ""
    elapsed: float = 0.0

    def as_json(self) -> str:
        return json.dumps(
            {"build": self.build, "event": self.event, "detail": self.detail,
             "elapsed": round(self.elapsed, 1)},
            sort_keys=True,
        )  # fmt: skip


class Progress(Protocol):
    def emit(self, event: Event) -> None: ...

    def close(self) -> None: ...


class JsonProgress:
    """One JSON object per line on stdout."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self.lock = threading.Lock()

    def emit(self, event: Event) -> None:
        if event.event == "message":
            return
        with self.lock:
            self.stream.write(event.as_json() + "\n")
            self.stream.flush()

    def close(self) -> None:
        pass


class ConsoleProgress:
    """A rich status line per build: its step, elapsed time and log path."""

    def __init__(self, logs: dict[str, str]) -> None:
        from rich.console import Console
        from rich.live import Live
        from rich.table import Table

        self._table_type = Table
        self.console = Console(stderr=True)
        self.logs = logs
        self.state: dict[str, tuple[str, float]] = {
            name: ("starting", time.monotonic()) for name in logs
        }
        self.lock = threading.Lock()
        self.live = Live(self._render(), console=self.console, refresh_per_second=2,
                         transient=False) if self.console.is_terminal else None  # fmt: skip
        if self.live:
            self.live.start()

    def _render(self) -> Table:
        table = self._table_type(box=None, show_header=False)
        for name, (step, started) in self.state.items():
            table.add_row(name, step, f"{time.monotonic() - started:6.0f} s", self.logs[name])
        return table

    def emit(self, event: Event) -> None:
        with self.lock:
            if event.event in ("step", "start", "done", "cached", "failed"):
                started = self.state.get(event.build, ("", time.monotonic()))[1]
                label = event.detail if event.event == "step" else event.event
                self.state[event.build] = (label, started)
                if self.live:
                    self.live.update(self._render())
                else:
                    self.console.print(f"{event.build}: {label} ({event.elapsed:.0f} s)")
            elif event.event == "error":
                self.console.print(f"{event.build}: [red]{event.detail}[/red]")
            elif event.event == "warning":
                self.console.print(f"{event.build}: [yellow]warning: {event.detail}[/yellow]")

    def close(self) -> None:
        if self.live:
            self.live.update(self._render())
            self.live.stop()
