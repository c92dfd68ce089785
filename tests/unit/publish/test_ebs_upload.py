"""The uploader's pieces: data extents, the block plan, the checksums."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from builder.publish.ebs_upload import (
    BLOCK,
    blocks_of,
    data_extents,
    linear_checksum,
    volume_gib,
)
from tests.conftest import require_tool


def sparse(path: Path, size: int, regions: list[tuple[int, int]]) -> None:
    with path.open("wb") as handle:
        handle.truncate(size)
        for offset, length in regions:
            handle.seek(offset)
            handle.write(os.urandom(length))


def test_extents_find_data_not_holes(tmp_path: Path) -> None:
    image = tmp_path / "disk.raw"
    sparse(image, 64 * BLOCK, [(3 * BLOCK + 100, 10), (40 * BLOCK - 5, 10)])
    fd = os.open(image, os.O_RDONLY)
    try:
        extents = data_extents(fd, image.stat().st_size)
    finally:
        os.close(fd)
    # Filesystems report data in their own block granularity: the extents cover the
    # written bytes and are far smaller than the file.
    covered = sum(end - start for start, end in extents)
    assert covered < 8 * BLOCK
    for offset in (3 * BLOCK + 100, 40 * BLOCK - 5, 40 * BLOCK + 4):
        assert any(start <= offset < end for start, end in extents)
    assert blocks_of(extents) == [3, 39, 40]


def test_blocks_of_straddling_and_adjacent_extents() -> None:
    extents = [(BLOCK - 1, BLOCK + 1), (BLOCK + 10, BLOCK + 20), (5 * BLOCK, 7 * BLOCK)]
    assert blocks_of(extents) == [0, 1, 5, 6]
    assert blocks_of([]) == []


def test_empty_file_has_no_extents(tmp_path: Path) -> None:
    image = tmp_path / "empty.raw"
    image.write_bytes(b"")
    fd = os.open(image, os.O_RDONLY)
    try:
        assert data_extents(fd, 0) == []
    finally:
        os.close(fd)


def test_linear_checksum_matches_coreutils(tmp_path: Path) -> None:
    """The LINEAR aggregate against sha256sum: the digests of the blocks, in index order,
    concatenated as raw bytes, hashed again, base64."""
    sha256sum = require_tool("sha256sum")
    blocks = [os.urandom(BLOCK) for _ in range(5)]
    digests = b""
    for index, block in enumerate(blocks):
        path = tmp_path / f"block{index}"
        path.write_bytes(block)
        hexdigest = subprocess.run(
            [sha256sum, str(path)], capture_output=True, text=True, check=True
        ).stdout.split()[0]
        digests += bytes.fromhex(hexdigest)
    (tmp_path / "digests").write_bytes(digests)
    aggregate = subprocess.run(
        [sha256sum, str(tmp_path / "digests")], capture_output=True, text=True, check=True
    ).stdout.split()[0]
    expected = base64.b64encode(bytes.fromhex(aggregate)).decode()
    ours = linear_checksum([hashlib.sha256(block).digest() for block in blocks])
    assert ours == expected
    # Order matters: block index order, not arrival order.
    shuffled = [hashlib.sha256(block).digest() for block in reversed(blocks)]
    assert linear_checksum(shuffled) != expected


@pytest.mark.parametrize(
    ("size", "gib"), [(1, 1), (1024**3, 1), (1024**3 + 1, 2), (20 * 1024**3, 20)]
)
def test_volume_size_rounds_up_to_whole_gib(size: int, gib: int) -> None:
    assert volume_gib(size) == gib
