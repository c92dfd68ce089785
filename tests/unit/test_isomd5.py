"""The media checksum computed on the way to the disk equals implantisomd5's, byte for byte."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from builder import isomd5
from tests.conftest import require_tool
from tests.installer_media import tiny_installer_iso

APPDATA = slice(isomd5.PVD_OFFSET + isomd5.APPDATA_OFFSET, isomd5.PVD_OFFSET + 883 + 512)


def _with_random_file(iso: Path, mib: float, work: Path) -> Path:
    """`iso` with a file of random bytes added, so that every fragment sum differs."""
    data = work / "random.bin"
    data.write_bytes(os.urandom(int(mib * 1024**2)))
    grown = work / f"grown-{mib}.iso"
    subprocess.run(
        [require_tool("xorriso"), "-indev", str(iso), "-outdev", str(grown),
         "-boot_image", "any", "replay", "-map", str(data), "/random.bin"],
        check=True, capture_output=True,
    )  # fmt: skip
    return grown


@pytest.mark.parametrize("mib", [0, 0.3, 5])  # fragments smaller and larger than a 32 KiB read
def test_same_bytes_as_implantisomd5(tmp_path: Path, mib: float) -> None:
    source = tiny_installer_iso(tmp_path)
    if mib:
        source = _with_random_file(source, mib, tmp_path)
    theirs = tmp_path / "theirs.iso"
    shutil.copy(source, theirs)
    subprocess.run([require_tool("implantisomd5"), str(theirs)], check=True, capture_output=True)
    ours = tmp_path / "ours.iso"
    with source.open("rb") as stream, ours.open("wb") as out:
        isomd5.write_implanted(stream, out)
    assert ours.read_bytes()[APPDATA] == theirs.read_bytes()[APPDATA]
    assert ours.read_bytes() == theirs.read_bytes()
    check = subprocess.run([require_tool("checkisomd5"), str(ours)], capture_output=True)
    assert check.returncode == 0, check.stdout


def test_a_byte_changed_after_the_checksum_fails_checkisomd5(tmp_path: Path) -> None:
    source = _with_random_file(tiny_installer_iso(tmp_path), 1, tmp_path)
    ours = tmp_path / "ours.iso"
    with source.open("rb") as stream, ours.open("wb") as out:
        isomd5.write_implanted(stream, out)
    with ours.open("r+b") as handle:
        handle.seek(ours.stat().st_size // 2)
        byte = handle.read(1)
        handle.seek(-1, io.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 0xFF]))
    check = subprocess.run([require_tool("checkisomd5"), str(ours)], capture_output=True)
    assert check.returncode == 1


def test_old_appdata_is_replaced_not_hashed(tmp_path: Path) -> None:
    source = tiny_installer_iso(tmp_path)
    dirty = bytearray(source.read_bytes())
    dirty[APPDATA] = b"x" * 512
    results = []
    for data in (source.read_bytes(), bytes(dirty)):
        out = io.BytesIO()
        isomd5.write_implanted(io.BytesIO(data), out)
        results.append(out.getvalue())
    assert results[0] == results[1]


def test_not_an_iso(tmp_path: Path) -> None:
    with pytest.raises(isomd5.NotAnIsoImage, match="no ISO 9660 primary volume descriptor"):
        isomd5.write_implanted(io.BytesIO(b"\0" * 40000), io.BytesIO())
    with pytest.raises(isomd5.NotAnIsoImage, match="ended before"):
        isomd5.write_implanted(io.BytesIO(b"\0" * 100), io.BytesIO())


def test_truncated_image(tmp_path: Path) -> None:
    data = tiny_installer_iso(tmp_path).read_bytes()
    with pytest.raises(isomd5.NotAnIsoImage, match="its descriptor says"):
        isomd5.write_implanted(io.BytesIO(data[: len(data) // 2]), io.BytesIO())
