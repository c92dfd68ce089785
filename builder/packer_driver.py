"""Packer, driven through the python-packer wrapper.

python-packer (0.1.2, pinned; it pins sh==1.11) builds Packer's argument list
and runs it. Two things it does not do, done here: its `validate()` breaks on
Python 3 when Packer fails (it reads `exc.message`), so validation runs the
same baked command and reads the exit code itself; and it passes the whole
environment to Packer, so we give it ours (minimal, and CHECKPOINT_DISABLE so
Packer never calls home). Every command is logged as it would be typed.
"""

from __future__ import annotations

import importlib
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builder import tools
from builder.errors import UserError

log = logging.getLogger("builder.packer")

PACKER_ENV = {"CHECKPOINT_DISABLE": "1", "PACKER_NO_COLOR": "1"}


@dataclass(frozen=True)
class PackerRun:
    argv: tuple[str, ...]
    returncode: int
    output: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def parse_version(text: str) -> tuple[int, int, int]:
    match = re.search(r"(\d+)\.(\d+)\.(\d+)", text)
    if match is None:
        raise UserError(f"cannot read a Packer version from {text.strip()!r}")
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def installed_version() -> tuple[int, int, int] | None:
    """The installed Packer's version, or None when there is no packer."""
    try:
        result = tools.run(["packer", "version"], env=PACKER_ENV, timeout=60)
    except tools.ToolMissing:
        return None
    return parse_version(result.stdout)


def _client(template: Path, variables: Mapping[str, str], var_file: Path | None) -> Any:
    # python-packer installs a top-level module named `packer`.
    python_packer = importlib.import_module("packer")
    client = python_packer.Packer(
        str(template),
        vars=dict(variables),
        var_file=str(var_file) if var_file else None,
        exec_path=tools.require("packer"),
    )
    client.packer = client.packer.bake(_env=tools.minimal_env(PACKER_ENV), _ok_code=[0, 1])
    return client


def validate(
    template: Path, variables: Mapping[str, str], var_file: Path | None = None
) -> PackerRun:
    """`packer validate` on one template file, through python-packer's command builder."""
    client = _client(template, variables, var_file)
    client.packer_cmd = client.packer.validate
    client._append_base_arguments()
    client._add_opt(str(template))
    argv = _argv(client.packer_cmd)
    log.debug("running: %s", tools.command_line(argv))
    result = client.packer_cmd()
    output = _text(result.stdout) + _text(result.stderr)
    return PackerRun(argv, int(result.exit_code), tools.redact(output))


def _argv(command: Any) -> tuple[str, ...]:
    """The exact argument list an sh 1.11 command object will run."""
    return (_text(command._path), *(_text(arg) for arg in command._partial_baked_args))


def _text(data: bytes | str) -> str:
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else data
