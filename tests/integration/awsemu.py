"""The AWS emulator for the publish tests and bench: moto as a server on loopback.

`MotoServer` runs `python -m moto.server` on a free port of 127.0.0.1 in its
own process group; boto3 reaches it over HTTP through `--endpoint-url`.
`sparse_image` writes a raw image with random data at given offsets and holes
elsewhere; `read_back` reads every block of a snapshot with GetSnapshotBlock
and compares it with the image.
"""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import free_port

BLOCK = 512 * 1024
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


class MotoServer:
    def __init__(self, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{self.url}/moto-api/data.json", timeout=5).close()  # noqa: S310
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"moto server did not start; see {log}") from None
                time.sleep(0.2)

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")  # noqa: S310
        urllib.request.urlopen(request, timeout=60).close()  # noqa: S310

    def enforce_auth(self) -> None:
        """From now on every call must be signed by a key moto's IAM knows and be allowed
        by its policies (moto checks the SigV4 signature and, for STS keys, the token)."""
        request = urllib.request.Request(  # noqa: S310
            f"{self.url}/moto-api/reset-auth",
            data=b"0",
            method="POST",
            headers={"Content-Type": "text/plain"},  # a form body would be parsed away
        )
        urllib.request.urlopen(request, timeout=60).close()  # noqa: S310

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()


def client(service: str, region: str, endpoint: str) -> Any:
    import boto3

    return boto3.client(
        service,
        region_name=region,
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def sparse_image(path: Path, size: int, regions: list[tuple[int, int]], seed: int = 7) -> int:
    """A sparse file of `size` bytes with random data at (offset, length) regions; the
    number of data bytes."""
    import random

    rng = random.Random(seed)
    with path.open("wb") as handle:
        handle.truncate(size)
        for offset, length in regions:
            handle.seek(offset)
            remaining = length
            while remaining:
                chunk = min(remaining, 8 * 1024**2)
                handle.write(rng.randbytes(chunk))
                remaining -= chunk
    return sum(length for _, length in regions)


def scattered(size: int, data: int, pieces: int) -> list[tuple[int, int]]:
    """`pieces` equal data regions spread evenly over `size`, each starting 300,000 bytes
    past a block boundary, so every region straddles block boundaries at both ends."""
    length = data // pieces
    stride = size // pieces
    return [(index * stride + 300_000, length) for index in range(pieces)]


@dataclass
class ReadBack:
    present: int = 0
    absent: int = 0
    zero_present: int = 0
    # The LINEAR checksum of the image's non-zero blocks, computed here independently.
    linear: str = ""


def read_back(ebs: Any, snapshot_id: str, image: Path, encrypted: bool) -> ReadBack:
    """Every block of the snapshot against the image: same data, checksums right; blocks
    absent are zeros in the image (and, unencrypted, every all-zero block is absent)."""
    listed: dict[int, str] = {}
    kwargs: dict[str, Any] = {"SnapshotId": snapshot_id}
    while True:
        page = ebs.list_snapshot_blocks(**kwargs)
        listed.update({b["BlockIndex"]: b["BlockToken"] for b in page["Blocks"]})
        if not page.get("NextToken"):
            break
        kwargs["NextToken"] = page["NextToken"]
    size = image.stat().st_size
    total = (size + BLOCK - 1) // BLOCK
    zero = bytes(BLOCK)
    counts = ReadBack()
    digests = hashlib.sha256()
    with image.open("rb") as handle:
        for index in range(total):
            handle.seek(index * BLOCK)
            expected = handle.read(BLOCK).ljust(BLOCK, b"\0")
            if expected != zero:
                digests.update(hashlib.sha256(expected).digest())
            if index not in listed:
                assert expected == zero, f"block {index} holds data but is not in the snapshot"
                counts.absent += 1
                continue
            answer = ebs.get_snapshot_block(
                SnapshotId=snapshot_id, BlockIndex=index, BlockToken=listed[index]
            )
            data = answer["BlockData"].read()
            assert data == expected, f"block {index} differs from the image"
            digest = base64.b64encode(hashlib.sha256(data).digest()).decode()
            assert answer["Checksum"] == digest, f"block {index}: checksum {answer['Checksum']}"
            counts.present += 1
            if data == zero:
                counts.zero_present += 1
    assert not (set(listed) - set(range(total))), "blocks past the end of the image"
    if not encrypted:
        assert counts.zero_present == 0, "an all-zero block was uploaded unencrypted"
    counts.linear = base64.b64encode(digests.digest()).decode()
    return counts
