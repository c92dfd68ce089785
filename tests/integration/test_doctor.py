"""`builder doctor` reports what is there and how to get what is not."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CliRun, require_tool

pytestmark = pytest.mark.integration


def test_doctor_finds_the_tools(builder_cli: CliRun) -> None:
    require_tool("packer")
    result = builder_cli("doctor")
    lines = result.stdout.splitlines()
    packer = next(line for line in lines if " packer " in line)
    assert packer.startswith("ok ")
    assert "Packer v" in packer
    assert any(" kvm " in line for line in lines)
    assert result.returncode == 0, result.stdout


def test_doctor_names_the_package_of_a_missing_tool(tmp_path: Path) -> None:
    # A PATH with python but none of the tools.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    env = {**os.environ, "PATH": str(bin_dir)}
    result = subprocess.run(
        [sys.executable, "-m", "builder", "doctor"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 1
    packer = next(line for line in result.stdout.splitlines() if " packer " in line)
    assert packer.startswith("MISSING")
    assert "[apt-get install packer]" in packer
    xorriso = next(line for line in result.stdout.splitlines() if " xorriso " in line)
    assert "[apt-get install xorriso]" in xorriso
