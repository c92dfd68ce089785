"""The installer's media checksum, computed while the ISO is written.

CentOS' installer checks its media against an MD5 "implanted" in the primary
volume descriptor's application-use area (isomd5sum's implantisomd5 writes it,
checkisomd5 and the installer's media check read it). implantisomd5 reads the
whole finished image again; `MediaChecksum` computes the same value from the
bytes on their way to the disk, so the remaster makes one pass over its output.
The format follows isomd5sum 1.2.3 (Debian 12's): the MD5 of the image with the
application-use area blank (spaces), the last 15 sectors left out, and 20
fragment sums (3 hex characters each) taken at 32 KiB read boundaries. The
tests compare the implanted bytes with implantisomd5's own and run checkisomd5.
"""

from __future__ import annotations

import hashlib
from typing import IO

SECTOR = 2048
PVD_OFFSET = 16 * SECTOR  # the first volume descriptor, after the system area
APPDATA_OFFSET = 883  # the application-use field within the descriptor
APPDATA_SIZE = 512
SIZE_OFFSET = 84  # the volume space size, big-endian half
SKIPSECTORS = 15
FRAGMENT_COUNT = 20
FRAGMENT_CHARS = 3  # isomd5sum: FRAGMENT_SUM_SIZE 60 / FRAGMENT_COUNT 20
READ_SIZE = 16 * SECTOR  # implantisomd5's read size: fragment sums fall on its reads
COPY_SIZE = 1024 * 1024
_HEAD = PVD_OFFSET + SECTOR


class NotAnIsoImage(ValueError):
    """The stream does not start with an ISO 9660 primary volume descriptor."""


def _fragment_ends(total: int) -> list[int]:
    """Where implantisomd5 takes a fragment sum: the end of the first read of each fragment."""
    fragment_size = total // (FRAGMENT_COUNT + 1)
    ends: list[int] = []
    previous = 0
    for start in range(0, total, READ_SIZE):
        current = start // fragment_size
        if current != previous:
            ends.append(min(start + READ_SIZE, total))
            previous = current
    return ends


class MediaChecksum:
    """Feed an ISO image's bytes in order; get them back with the checksum area blanked."""

    def __init__(self, supported: bool = False) -> None:
        self._supported = supported
        self._head = bytearray()
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._position = 0
        self._total = -1
        self._ends: list[int] = []
        self._fragments: list[str] = []

    def feed(self, data: bytes) -> bytes:
        """The bytes to write for `data` (held back until the volume descriptor is seen)."""
        if self._total < 0:
            self._head += data
            if len(self._head) < _HEAD:
                return b""
            data = self._start(self._head)
            self._head = bytearray()
        self._hash(data)
        return data

    def _start(self, head: bytearray) -> bytes:
        descriptor = head[PVD_OFFSET : PVD_OFFSET + SECTOR]
        if descriptor[0] != 1 or descriptor[1:6] != b"CD001":
            raise NotAnIsoImage("no ISO 9660 primary volume descriptor at sector 16")
        sectors = int.from_bytes(descriptor[SIZE_OFFSET : SIZE_OFFSET + 4], "big")
        self._total = sectors * SECTOR - SKIPSECTORS * SECTOR
        self._ends = _fragment_ends(self._total)
        start = PVD_OFFSET + APPDATA_OFFSET
        head[start : start + APPDATA_SIZE] = b" " * APPDATA_SIZE
        return bytes(head)

    def _hash(self, data: bytes) -> None:
        view = memoryview(data)
        start = self._position
        self._position += len(data)
        position, stop = start, min(self._position, self._total)
        while position < stop:
            end = stop
            if self._ends and self._ends[0] <= stop:
                end = self._ends[0]
            self._md5.update(view[position - start : end - start])
            position = end
            if self._ends and end == self._ends[0]:
                self._ends.pop(0)
                digest = self._md5.copy().digest()
                self._fragments.append("".join(f"{byte:x}"[0] for byte in digest[:FRAGMENT_CHARS]))

    def appdata(self) -> bytes:
        """The application-use area to write at PVD_OFFSET + APPDATA_OFFSET."""
        if self._total < 0:
            raise NotAnIsoImage("the image ended before its primary volume descriptor")
        if self._position < self._total:
            raise NotAnIsoImage(
                f"the image is {self._position} bytes, its descriptor says {self._total} or more"
            )
        text = (
            f"ISO MD5SUM = {self._md5.hexdigest()};SKIPSECTORS = {SKIPSECTORS};"
            f"RHLISOSTATUS={int(self._supported)};"
            f"FRAGMENT SUMS = {''.join(self._fragments)};FRAGMENT COUNT = {FRAGMENT_COUNT};"
            "THIS IS NOT THE SAME AS RUNNING MD5SUM ON THIS ISO!!"
        )
        return text.encode("ascii").ljust(APPDATA_SIZE, b" ")


def write_implanted(stream: IO[bytes], out: IO[bytes]) -> None:
    """Copy an ISO image from `stream` to the seekable `out`, implanting its media checksum."""
    checksum = MediaChecksum()
    while chunk := stream.read(COPY_SIZE):
        out.write(checksum.feed(chunk))
    appdata = checksum.appdata()
    out.seek(PVD_OFFSET + APPDATA_OFFSET)
    out.write(appdata)
