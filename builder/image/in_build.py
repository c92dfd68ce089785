"""What a build needs from checks that run inside it (`builder build --verify`).

The build does not know what the checks are (they live in builder/verify/,
a later stage); the command line hands an implementation in BuildOptions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from builder.config.load import LoadedConfig
from builder.config.roles import RoleSet


class InBuildChecks(Protocol):
    """Checks Packer runs over its SSH connection after seal; one failing fails the build."""

    @property
    def report_name(self) -> str:
        """The report they write into the work directory (kept with a failed build's logs)."""
        ...

    def command(
        self, loaded: LoadedConfig, roles: RoleSet, work: Path, key: Path, packer_tmp: Path
    ) -> str:
        """The shell command Packer's shell-local runs (it adds `--host ...`)."""
        ...

    def cleanup(self, packer_tmp: Path) -> None:
        """Whatever the command left open, when the build ends either way."""
        ...

    def failures(self, work: Path) -> list[str]:
        """The failed checks in the report, one line each (none: no report, or all passed)."""
        ...
