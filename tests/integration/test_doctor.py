"""`builder doctor` reports what is there and how to get what is not."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from builder.doctor import PROGRAMS, default_kernel
from builder.image import accel
from tests.conftest import CliRun, require_tool

pytestmark = pytest.mark.integration


def test_doctor_finds_the_tools(builder_cli: CliRun) -> None:
    require_tool("packer")
    result = builder_cli("doctor")
    lines = result.stdout.splitlines()
    packer = next(line for line in lines if " packer " in line)
    assert packer.startswith("ok ")
    assert "Packer v" in packer
    assert result.returncode == 0, result.stdout
    [kvm] = [line for line in lines if line.split()[1:2] == ["kvm"]]
    assert kvm == _kvm_line(*_expected_kvm(), width=max(len(p[0]) for p in PROGRAMS))


def _kvm_line(mark: str, detail: str, hint: str, width: int) -> str:
    return f"{mark:7} {'kvm':{width}}  {detail}" + (f"  [{hint}]" if hint else "")


def _expected_kvm() -> tuple[str, str, str]:
    """Status word, detail and hint doctor must print here, from this machine's own facts."""
    if not Path("/dev/kvm").exists():
        return "no", "no /dev/kvm: builds use TCG (software, much slower)", ""
    kernel = default_kernel()
    probed = accel.accelerator_works("kvm", kernel)
    if not probed.works:
        return "no", f"/dev/kvm exists but KVM does not work: {probed.detail}; builds use TCG", ""
    if kernel is None:
        return (
            "no",
            "unproven: a tiny guest runs, but a Linux kernel can still hang where it runs",
            "pass --kernel PATH to boot one",
        )
    return "ok", f"works (a tiny guest and {kernel} ran)", ""


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
