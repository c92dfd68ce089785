"""The accelerator probe's guest: the embedded bytes are the assembly source."""

from __future__ import annotations

import subprocess
from pathlib import Path

from builder.image import accel
from tests.conftest import REPO, require_tool


def test_embedded_probe_is_the_assembled_source(tmp_path: Path) -> None:
    nasm = require_tool("nasm")
    out = tmp_path / "probe.bin"
    subprocess.run(
        [nasm, "-f", "bin", "-o", str(out), str(REPO / "builder" / "image" / "accel_probe.asm")],
        check=True,
    )
    assert out.read_bytes() == accel.PROBE_CODE


def test_boot_sector_is_bootable() -> None:
    sector = accel.boot_sector(accel.PROBE_CODE)
    assert len(sector) == 512
    assert sector[-2:] == b"\x55\xaa"
