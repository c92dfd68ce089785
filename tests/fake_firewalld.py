"""A firewall-cmd that fails its first calls as when firewalld does not answer, and a
sleep that only counts: for the commands that ask firewalld again (first boot's reload,
verify's reading of the running firewall)."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from pathlib import Path

NOT_RUNNING = "FirewallD is not running"  # firewall-cmd's line when D-Bus gets no answer


def fake_firewall_cmd(
    directory: Path, failures: int, answers: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment of a shell whose firewall-cmd fails its first `failures` calls
    (exit 252, NOT_RUNNING on stderr, as firewall-cmd does) and then prints
    `answers[first argument]`; each call's arguments go to `directory`/calls, each
    sleep's to `directory`/sleeps."""
    bin_dir = directory / "bin"
    bin_dir.mkdir()
    replies = "".join(
        f"  {shlex.quote(option)}) printf '%s\\n' {shlex.quote(text)} ;;\n"
        for option, text in (answers or {}).items()
    )
    (bin_dir / "firewall-cmd").write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {directory}/calls\n'
        f'if [ "$(wc -l < {directory}/calls)" -le {failures} ]; then\n'
        f'  echo "{NOT_RUNNING}" >&2; exit 252\n'
        "fi\n"
        f'case "$1" in\n{replies}esac\n'
    )
    (bin_dir / "sleep").write_text(f'#!/bin/sh\necho "$*" >> {directory}/sleeps\n')
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    return {"PATH": f"{bin_dir}:/usr/bin:/bin"}


def calls(directory: Path, name: str) -> list[str]:
    """What the fakes recorded (`calls` or `sleeps`), one line each."""
    record = directory / name
    return record.read_text().splitlines() if record.exists() else []
