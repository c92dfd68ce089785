"""The user-error types the CLI prints as one line each and exit 2."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class UserError(Exception):
    """Something the user can fix: printed as one line (plus a hint), exit 2."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def lines(self) -> list[str]:
        return [f"error: {self.message}"]


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


class ValidationFailed(Exception):
    """A validator found a problem in a rendered artifact: exit 1."""

    exit_code = 1

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


class BuildFailed(Exception):
    """Packer (or a step after it) failed: exit 1, with the log's end and path."""

    exit_code = 1

    def __init__(self, role: str, message: str, tail: list[str], logs: list[Path]) -> None:
        super().__init__(message)
        self.role = role
        self.message = message
        self.tail = tail
        self.logs = logs

    def lines(self) -> list[str]:
        lines = [f"error: {self.role}: {self.message}"]
        lines += [f"  | {line}" for line in self.tail]
        lines += [f"  log: {path}" for path in self.logs]
        return lines
