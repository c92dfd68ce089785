"""The errors builder reports, each carrying its exit code.

The CLI catches `BuilderError` once and prints its lines: exit 2 for bad input
(`UserError`: config, arguments, missing files, a host the user named that does
not answer), exit 1 for everything that failed while doing the work (a tool, a
build, a validator, a check). Anything else is a bug (exit 70).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

BAD_INPUT = 2
FAILED = 1


class BuilderError(Exception):
    """Something went wrong doing the work: exit 1, one line (plus a hint)."""

    exit_code: ClassVar[int] = FAILED

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def lines(self) -> list[str]:
        return [f"error: {self.message}"]


class UserError(BuilderError):
    """Bad input the user can fix: one line (plus a hint), exit 2."""

    exit_code: ClassVar[int] = BAD_INPUT


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input file, located as precisely as we can."""

    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        key = f" {self.key}:" if self.key else ""
        return f"{where}:{key} {self.message}"


class ConfigError(UserError):
    """Every problem found in the configuration, reported at once."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))

    def lines(self) -> list[str]:
        return [f"error: {p}" for p in self.problems]


class ValidationFailed(BuilderError):
    """A validator found a problem in a rendered artifact: exit 1."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))

    def lines(self) -> list[str]:
        return [f"invalid: {problem}" for problem in self.problems]


class BuildFailed(BuilderError):
    """Packer (or a step after it) failed: exit 1, with the log's end and path."""

    def __init__(self, role: str, message: str, tail: list[str], logs: list[Path]) -> None:
        super().__init__(message)
        self.role = role
        self.tail = tail
        self.logs = logs

    def lines(self) -> list[str]:
        lines = [f"error: {self.role}: {self.message}"]
        lines += [f"  | {line}" for line in self.tail]
        lines += [f"  log: {path}" for path in self.logs]
        return lines
