"""The installer's serial console, followed during a build.

The kickstart runs anaconda in cmdline mode and the boot line sends its text to
the serial port, which QEMU writes to the build's `serial.log`. `InstallerLog`
reads what has been written so far (`feed`) and knows two things from it:

- the install's progress: anaconda's own progress lines (`Starting automated
  install.`, `Checking software selection`, `Starting package installation
  process`, `Running post-installation scripts`, ...) as steps;
- an installer error, in the words anaconda prints it: a kickstart it cannot
  parse ("The following problem occurred on line N of the kickstart file:" and
  the problem on the next line), or a non-interactive install that stops ("The
  installation was stopped due to an error ... The exact error message is:"
  and the message after it: a repository that does not answer, a package or
  group no repository has, storage it refuses, a failing `%post
  --erroronfail`). Without cmdline mode anaconda would ask instead; the
  question's line is taken as the error too ("storage configuration failed:",
  "Would you like to ignore this ...").

A line counts only once its newline has arrived, so a message half written is
never reported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

# anaconda 21 (CentOS 7) progress lines -> the step they start
STEPS: tuple[tuple[str, str], ...] = (
    ("Starting installer", "installer: starting"),
    ("Starting automated install", "installer: reading the kickstart"),
    ("Checking software selection", "installer: checking the software selection"),
    ("Generating updated storage configuration", "installer: storage"),
    ("Creating disklabel on", "installer: partitioning"),
    ("Starting package installation process", "installer: installing packages"),
    ("Installing boot loader", "installer: boot loader"),
    ("Performing post-installation setup tasks", "installer: configuring"),
    ("Running post-installation scripts", "installer: %post"),
    ("Installation complete", "installer: complete"),
)
KICKSTART_PROBLEM = re.compile(
    r"The following problem occurred on line (\d+) of the kickstart file"
)
EXACT_ERROR = "The exact error message is:"
QUESTIONS = ("storage configuration failed:", "Would you like to ignore this")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@dataclass
class InstallerLog:
    """What the serial log has said so far: steps seen, and the installer's error."""

    path: Path
    offset: int = 0
    pending: str = ""
    lines: list[str] = field(default_factory=list)
    step: str = ""
    error: str | None = None

    def poll(self) -> list[str]:
        """Read what was appended to the file since the last call; the new steps."""
        try:
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
        except FileNotFoundError:
            return []
        self.offset += len(data)
        return self.feed(data.decode("utf-8", "replace"))

    def feed(self, text: str) -> list[str]:
        """Take more console text; the steps it starts (in order)."""
        *complete, self.pending = (self.pending + text).split("\n")
        steps = []
        for raw in complete:
            line = _ANSI.sub("", raw).replace("\r", "").strip()
            self.lines.append(line)
            step = step_of(line)
            if step and step != self.step:
                self.step = step
                steps.append(step)
        if self.error is None:
            self.error = error_in(self.lines)
        return steps

    def tail(self, count: int) -> list[str]:
        return [line for line in self.lines if line][-count:]


def step_of(line: str) -> str | None:
    for prefix, step in STEPS:
        if line.startswith(prefix):
            return step
    return None


def _next_text(lines: list[str], index: int) -> str | None:
    return next((line for line in lines[index + 1 :] if line), None)


def error_in(lines: list[str]) -> str | None:
    """The installer's error line, when the console shows one (complete lines only)."""
    for index, line in enumerate(lines):
        problem = KICKSTART_PROBLEM.search(line)
        if problem:
            message = _next_text(lines, index)
            if message is not None:
                return f"kickstart line {problem.group(1)}: {message}"
        if line.startswith(EXACT_ERROR):
            message = line[len(EXACT_ERROR) :].strip() or _next_text(lines, index)
            if message is not None:
                return message
        for question in QUESTIONS:
            if question in line:
                after = line.split(question, 1)[1].strip()
                if question.startswith("Would"):
                    return line
                message = after or _next_text(lines, index)
                if message is not None:
                    return f"{question} {message}"
    return None
