"""Build progress as events, for people or for CI.

A build sends `Event`s of the kinds in `EventKind` (the steps come from
Packer's machine-readable lines, read in builder/image/packer.py); two
implementations of `Progress` show them: `ConsoleProgress` (rich, one status
line per build) and `JsonProgress` (one JSON event per line, for CI systems).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol, TextIO

if TYPE_CHECKING:
    from rich.table import Table


class EventKind(StrEnum):
    """What happened to a build; the value is the `event` of a --json line."""

    START = "start"  # Packer started (detail: the build log)
    STEP = "step"  # a new step (detail: its name)
    MESSAGE = "message"  # any other line of Packer's (not in --json)
    WARNING = "warning"  # the build goes on, worse (detail: why)
    ERROR = "error"  # an error line of Packer's
    DONE = "done"  # built (detail: the output directory)
    CACHED = "cached"  # up to date, nothing built (detail: the output directory)
    FAILED = "failed"  # the build failed (detail: the error)


# Kinds that change a build's state on the console.
STATE_KINDS = frozenset(
    {EventKind.START, EventKind.STEP, EventKind.DONE, EventKind.CACHED, EventKind.FAILED}
)


@dataclass(frozen=True)
class Event:
    build: str
    event: EventKind
    detail: str = ""
    elapsed: float = 0.0

    def as_json(self) -> str:
        return json.dumps(
            {
                "build": self.build,
                "event": self.event,
                "detail": self.detail,
                "elapsed": round(self.elapsed, 1),
            },
            sort_keys=True,
        )


class Progress(Protocol):
    def emit(self, event: Event) -> None: ...

    def close(self) -> None: ...


class JsonProgress:
    """One JSON object per line on stdout."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self.lock = threading.Lock()

    def emit(self, event: Event) -> None:
        if event.event is EventKind.MESSAGE:
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
        self.live = (
            Live(self._render(), console=self.console, refresh_per_second=2, transient=False)
            if self.console.is_terminal
            else None
        )
        if self.live:
            self.live.start()

    def _render(self) -> Table:
        table = self._table_type(box=None, show_header=False)
        for name, (step, started) in self.state.items():
            table.add_row(name, step, f"{time.monotonic() - started:6.0f} s", self.logs[name])
        return table

    def emit(self, event: Event) -> None:
        with self.lock:
            if event.event in STATE_KINDS:
                started = self.state.get(event.build, ("", time.monotonic()))[1]
                label = event.detail if event.event is EventKind.STEP else str(event.event)
                self.state[event.build] = (label, started)
                if self.live:
                    self.live.update(self._render())
                else:
                    self.console.print(f"{event.build}: {label} ({event.elapsed:.0f} s)")
            elif event.event is EventKind.ERROR:
                self.console.print(f"{event.build}: [red]{event.detail}[/red]")
            elif event.event is EventKind.WARNING:
                self.console.print(f"{event.build}: [yellow]warning: {event.detail}[/yellow]")

    def close(self) -> None:
        if self.live:
            self.live.update(self._render())
            self.live.stop()


def _mib(count: float) -> str:
    return f"{count / 1024**2:.1f} MiB"


class TransferProgress:
    """Bytes moved and bytes per second: a rich bar on a terminal, else a plain line every
    `interval` seconds (BUILDER_PROGRESS_INTERVAL); either way a notice when nothing has
    moved for `stall` seconds."""

    def __init__(
        self,
        label: str,
        total: int,
        unit: str = "blocks",
        interval: float | None = None,
        stall: float = 30.0,
    ) -> None:
        import os

        from rich.console import Console

        self.label = label
        self.total = total
        self.unit = unit
        self.interval = interval or float(os.environ.get("BUILDER_PROGRESS_INTERVAL", "10"))
        self.stall = stall
        self.done = 0
        self.items = 0
        self.items_total = 0
        self.started = time.monotonic()
        self.last_moved = self.started
        self.stalled = False
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.console = Console(stderr=True)
        self.bar = None
        if self.console.is_terminal:
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TransferSpeedColumn,
            )

            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                console=self.console,
                transient=False,
            )
            self.task = self.bar.add_task(label, total=total)
            self.bar.start()
        self.ticker = threading.Thread(target=self._tick, daemon=True)
        self.ticker.start()

    def advance(self, count: int, items: int = 1) -> None:
        with self.lock:
            self.done += count
            self.items += items
            self.last_moved = time.monotonic()
            if self.stalled:
                self.stalled = False
                self._say(f"{self.label}: moving again")
        if self.bar:
            self.bar.update(self.task, advance=count)

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        share = 100 * self.done / self.total if self.total else 100.0
        items = f", {self.items}/{self.items_total} {self.unit}" if self.items_total else ""
        return (
            f"{self.label}: {_mib(self.done)} of {_mib(self.total)} ({share:.0f}%), "
            f"{_mib(self.done / elapsed)}/s{items}"
        )

    def _tick(self) -> None:
        next_line = time.monotonic() + self.interval
        while not self.stop.wait(min(1.0, self.interval)):
            now = time.monotonic()
            with self.lock:
                if not self.stalled and now - self.last_moved >= self.stall:
                    self.stalled = True
                    idle = now - self.last_moved
                    self._say(f"{self.label}: stalled: nothing moved for {idle:.0f} s")
            if self.bar is None and now >= next_line:
                self._say(self.line())
                next_line = now + self.interval

    def close(self) -> None:
        self.stop.set()
        self.ticker.join()
        if self.bar:
            self.bar.stop()
        else:
            self._say(self.line() + " done")

    def _say(self, text: str) -> None:
        if self.bar:
            self.bar.console.print(text, highlight=False, soft_wrap=True)
        else:
            sys.stderr.write(text + "\n")
            sys.stderr.flush()
