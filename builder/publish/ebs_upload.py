"""A raw disk image straight into a new EBS snapshot (the EBS direct APIs).

StartSnapshot, then PutSnapshotBlock for each 512 KiB block that holds data,
many in flight from one file descriptor (`os.preadv` into a buffer each worker
reuses), then CompleteSnapshot with the LINEAR aggregate checksum: SHA-256
over the written blocks' SHA-256 digests (raw bytes) in block-index order,
base64 (AWS's definition; awslabs/coldsnap computes it the same way).

The data is found with SEEK_DATA/SEEK_HOLE, so a sparse 20 GiB image with
1 GiB in it reads 1 GiB. Blocks left out read back as zeros from an
unencrypted snapshot, so all-zero blocks inside data extents are left out
too; an encrypted snapshot gets every block, zeros included.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import math
import os
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builder.progress import TransferProgress
from builder.publish.aws import Aws, Concurrency, Retrier

BLOCK = 512 * 1024
GIB = 1024**3
ZEROS = bytes(BLOCK)
# A snapshot started and not completed within this many minutes goes to `error` (AWS).
SNAPSHOT_TIMEOUT_MINUTES = 240
log = logging.getLogger("builder.publish")


def data_extents(fd: int, size: int) -> list[tuple[int, int]]:
    """(start, end) byte ranges that may hold data; the whole file if the filesystem
    cannot tell."""
    extents = []
    offset = 0
    try:
        while offset < size:
            try:
                start = os.lseek(fd, offset, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno == 6:  # ENXIO: no data after offset
                    break
                raise
            end = min(os.lseek(fd, start, os.SEEK_HOLE), size)
            extents.append((start, end))
            offset = end
    except OSError:
        return [(0, size)] if size else []
    return extents


def blocks_of(extents: list[tuple[int, int]]) -> list[int]:
    """The block indices the extents touch, in order, each once."""
    indices: list[int] = []
    for start, end in extents:
        first, last = start // BLOCK, (end - 1) // BLOCK
        if indices and indices[-1] >= first:
            first = indices[-1] + 1
        indices.extend(range(first, last + 1))
    return indices


def block_checksum(data: bytes | bytearray | memoryview) -> bytes:
    return hashlib.sha256(data).digest()


def linear_checksum(digests: Iterator[bytes] | list[bytes]) -> str:
    """The LINEAR aggregate: SHA-256 of the block digests in index order, base64."""
    aggregate = hashlib.sha256()
    for digest in digests:
        aggregate.update(digest)
    return base64.b64encode(aggregate.digest()).decode()


def volume_gib(size: int) -> int:
    return max(1, math.ceil(size / GIB))


@dataclass(frozen=True)
class Upload:
    snapshot_id: str
    blocks: int
    checksum: str
    bytes_sent: int
    volume_gib: int


@dataclass
class _State:
    """What the workers share: the next block to take, the digests, the first failure."""

    indices: list[int]
    position: int = 0
    failure: BaseException | None = None
    bytes_sent: int = 0

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self.digests: dict[int, bytes] = {}

    def take(self) -> int | None:
        with self.lock:
            if self.failure is not None or self.position >= len(self.indices):
                return None
            self.position += 1
            return self.indices[self.position - 1]


def upload(
    aws: Aws,
    region: str,
    image: Path,
    *,
    tags: dict[str, str],
    description: str,
    encrypted: bool = False,
    kms_key: str | None = None,
    workers: int = 16,
    retrier: Retrier | None = None,
) -> Upload:
    """Upload `image` into a new snapshot and complete it; the snapshot's id and checksum."""
    ebs = aws.client("ebs", region)
    retrier = retrier or Retrier(concurrency=Concurrency(workers))
    concurrency = retrier.concurrency or Concurrency(workers)
    fd = os.open(image, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        gib = volume_gib(size)
        indices = (
            list(range(math.ceil(size / BLOCK))) if encrypted else blocks_of(data_extents(fd, size))
        )
        start: dict[str, Any] = {
            "VolumeSize": gib,
            "Description": description,
            "ClientToken": str(uuid.uuid4()),
            "Timeout": SNAPSHOT_TIMEOUT_MINUTES,
            "Tags": [{"Key": key, "Value": value} for key, value in tags.items()],
        }
        if encrypted or kms_key:
            start["Encrypted"] = True
        if kms_key:
            start["KmsKeyArn"] = kms_key
        started = retrier.call(f"StartSnapshot in {region}", ebs.start_snapshot, **start)
        snapshot_id = str(started["SnapshotId"])
        log.info(
            "%s: uploading %s into %s (%d blocks to read)", region, image, snapshot_id, len(indices)
        )
        state = _State(indices)
        progress = TransferProgress(f"upload {snapshot_id}", len(indices) * BLOCK)
        progress.items_total = len(indices)

        def work() -> None:
            buffer = bytearray(BLOCK)
            view = memoryview(buffer)
            while (index := state.take()) is not None:
                try:
                    _put(index, buffer, view)
                except BaseException as exc:
                    with state.lock:
                        state.failure = state.failure or exc
                    return

        def _put(index: int, buffer: bytearray, view: memoryview) -> None:
            offset = index * BLOCK
            count = os.preadv(fd, [view], offset)
            if count < BLOCK:
                view[count:] = ZEROS[count:]
            if not encrypted and buffer == ZEROS:
                progress.advance(BLOCK)
                return
            digest = block_checksum(buffer)
            concurrency.acquire()
            try:
                retrier.call(
                    f"PutSnapshotBlock {snapshot_id} block {index}",
                    ebs.put_snapshot_block,
                    # A snapshot just started may not be visible yet: retried for a minute.
                    not_found_window=60.0,
                    SnapshotId=snapshot_id,
                    BlockIndex=index,
                    BlockData=buffer,
                    DataLength=BLOCK,
                    Checksum=base64.b64encode(digest).decode(),
                    ChecksumAlgorithm="SHA256",
                )
            finally:
                concurrency.release()
            with state.lock:
                state.digests[index] = digest
                state.bytes_sent += BLOCK
            progress.advance(BLOCK)

        threads = [threading.Thread(target=work, daemon=True) for _ in range(max(1, workers))]
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        finally:
            progress.close()
        if state.failure is not None:
            raise state.failure
    finally:
        os.close(fd)
    checksum = linear_checksum([state.digests[index] for index in sorted(state.digests)])
    retrier.call(
        f"CompleteSnapshot {snapshot_id}",
        ebs.complete_snapshot,
        SnapshotId=snapshot_id,
        ChangedBlocksCount=len(state.digests),
        Checksum=checksum,
        ChecksumAlgorithm="SHA256",
        ChecksumAggregationMethod="LINEAR",
    )
    return Upload(snapshot_id, len(state.digests), checksum, state.bytes_sent, gib)
