"""A small ISO 9660 writer with Joliet names, for NoCloud seed images.

A seed holds a few small files in the root directory under a volume label
(`cidata`). That fits a fixed layout: 16 system sectors, the primary and the
Joliet volume descriptors, a terminator, four path tables, two root
directories, then the files, each from a sector boundary. The Joliet tree
carries the real names (`user-data`, `meta-data`, `network-config`); the
primary tree carries ISO 9660 level-1 names, as genisoimage writes them.
Output is deterministic: the same files give the same bytes (a fixed date).

The layout follows ECMA-119 and the Joliet specification; the tests read the
images back with xorriso and blkid, and real cloud-init mounts them in a VM.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from builder.fsutil import write_file

SECTOR = 2048
# 2000-01-01 00:00:00 UTC: seeds are reproducible, so they carry no real time.
_DATE_17 = b"2000010100000000\x00"
_DATE_7 = bytes([100, 1, 1, 0, 0, 0, 0])
_FIRST_DATA_SECTOR = 25


def _both16(value: int) -> bytes:
    return struct.pack("<H", value) + struct.pack(">H", value)


def _both32(value: int) -> bytes:
    return struct.pack("<I", value) + struct.pack(">I", value)


def _sectors(size: int) -> int:
    return max(1, -(-size // SECTOR))


def _level1_name(name: str) -> bytes:
    """user-data -> USER_DAT.;1: what a plain ISO 9660 reader sees."""
    stem, _, ext = name.upper().partition(".")
    clean = "".join(c if c.isalnum() else "_" for c in stem)[:8]
    ext = "".join(c if c.isalnum() else "_" for c in ext)[:3]
    return f"{clean}.{ext};1".encode("ascii")


def _directory_record(name: bytes, extent: int, size: int, is_dir: bool) -> bytes:
    length = 33 + len(name) + (1 if len(name) % 2 == 0 else 0)
    record = (
        bytes([length, 0])
        + _both32(extent)
        + _both32(size)
        + _DATE_7
        + bytes([2 if is_dir else 0, 0, 0])
        + _both16(1)
        + bytes([len(name)])
        + name
    )
    return record.ljust(length, b"\x00")


def _path_table(root_extent: int, big_endian: bool) -> bytes:
    extent = struct.pack(">I" if big_endian else "<I", root_extent)
    parent = struct.pack(">H" if big_endian else "<H", 1)
    return bytes([1, 0]) + extent + parent + b"\x00\x00"


def _a_chars(text: str, size: int) -> bytes:
    return text.encode("ascii").ljust(size, b" ")


def _ucs2(text: str, size: int) -> bytes:
    encoded = text.encode("utf-16-be")
    return (encoded + " ".encode("utf-16-be") * size)[:size]


@dataclass(frozen=True)
class _Layout:
    total_sectors: int
    extents: dict[str, int]


def _layout(files: Mapping[str, bytes]) -> _Layout:
    extents = {}
    sector = _FIRST_DATA_SECTOR
    for name in sorted(files):
        extents[name] = sector
        sector += _sectors(len(files[name]))
    return _Layout(sector, extents)


def _volume_descriptor(joliet: bool, label: str, layout: _Layout, root: bytes) -> bytes:
    text = _ucs2 if joliet else _a_chars
    vd = bytearray(SECTOR)
    vd[0] = 2 if joliet else 1
    vd[1:6] = b"CD001"
    vd[6] = 1
    vd[8:40] = text("LINUX", 32)
    vd[40:72] = text(label, 32)
    vd[80:88] = _both32(layout.total_sectors)
    if joliet:
        vd[88:91] = b"%/E"  # UCS-2 level 3
    vd[120:124] = _both16(1)
    vd[124:128] = _both16(1)
    vd[128:132] = _both16(SECTOR)
    vd[132:140] = _both32(10)
    first_table = 21 if joliet else 19
    vd[140:144] = struct.pack("<I", first_table)
    vd[148:152] = struct.pack(">I", first_table + 1)
    vd[156:190] = root
    for start, size in ((190, 128), (318, 128), (446, 128), (574, 128)):
        vd[start : start + size] = text("", size)
    for start in (702, 739, 776):
        vd[start : start + 37] = text("", 37) if not joliet else _ucs2("", 36) + b"\x00"
    vd[813:830] = _DATE_17
    vd[830:847] = _DATE_17
    vd[847:864] = b"0000000000000000\x00"
    vd[864:881] = _DATE_17
    vd[881] = 1
    return bytes(vd)


def _root_directory(files: Mapping[str, bytes], layout: _Layout, joliet: bool, own: int) -> bytes:
    records = [
        _directory_record(b"\x00", own, SECTOR, True),
        _directory_record(b"\x01", own, SECTOR, True),
    ]
    names = {name: (name.encode("utf-16-be") if joliet else _level1_name(name)) for name in files}
    for name in sorted(files, key=lambda n: names[n]):
        records.append(
            _directory_record(names[name], layout.extents[name], len(files[name]), False)
        )
    body = b"".join(records)
    if len(body) > SECTOR:
        raise ValueError("too many files for a one-sector root directory")
    return body.ljust(SECTOR, b"\x00")


def iso_image(label: str, files: Mapping[str, bytes]) -> bytes:
    """The bytes of an ISO 9660 + Joliet image holding `files` in its root."""
    if not 1 <= len(label) <= 16 or not label.isascii():
        raise ValueError(f"volume label must be 1-16 ASCII characters: {label!r}")
    for name in files:
        if "/" in name or not 1 <= len(name) <= 64:
            raise ValueError(f"not a root file name: {name!r}")
    layout = _layout(files)
    primary_root, joliet_root = 23, 24
    terminator = b"\xffCD001\x01".ljust(SECTOR, b"\x00")
    parts = [
        bytes(16 * SECTOR),
        _volume_descriptor(
            False, label, layout, _directory_record(b"\x00", primary_root, SECTOR, True)
        ),
        _volume_descriptor(
            True, label, layout, _directory_record(b"\x00", joliet_root, SECTOR, True)
        ),
        terminator,
        _path_table(primary_root, False).ljust(SECTOR, b"\x00"),
        _path_table(primary_root, True).ljust(SECTOR, b"\x00"),
        _path_table(joliet_root, False).ljust(SECTOR, b"\x00"),
        _path_table(joliet_root, True).ljust(SECTOR, b"\x00"),
        _root_directory(files, layout, False, primary_root),
        _root_directory(files, layout, True, joliet_root),
    ]
    for name in sorted(files):
        data = files[name]
        parts.append(data.ljust(_sectors(len(data)) * SECTOR, b"\x00"))
    image = b"".join(parts)
    assert len(image) == layout.total_sectors * SECTOR
    return image


def write_iso(path: Path, label: str, files: Mapping[str, bytes], mode: int = 0o644) -> None:
    """Write the image atomically: a temporary sibling, renamed into place."""
    write_file(path, iso_image(label, files), mode=mode)
