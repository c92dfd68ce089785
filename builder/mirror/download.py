"""Fetching the pinned RPMs: in parallel, resumable, each checked before it is kept.

A file goes to `DIR/.partial/NAME.part` first (an interrupted run continues it
with an HTTP Range request), is checked against its repository's checksum, and
its signature against the repository's GPG keys (`signatures.py`), and only
then is renamed into `DIR/Packages/`. A file already there with the pinned
sha256 is not fetched again.
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from builder import fsutil, proc
from builder.errors import BuilderError
from builder.mirror.resolve import PinnedPackage
from builder.progress import TransferProgress

PACKAGES_DIR = "Packages"
PARTIAL_DIR = ".partial"
READ_TIMEOUT = 60


class RpmRefused(BuilderError):
    """A fetched RPM that is not what its repository said, or not signed by its keys."""


@dataclass(frozen=True)
class Fetch:
    package: PinnedPackage
    url: str
    sha256: str | None = None  # pinned by a lock: the file must have exactly this


@dataclass
class FetchReport:
    fetched: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    bytes_fetched: int = 0
    sha256: dict[str, str] = field(default_factory=dict)  # nevra -> sha256 of the kept file
    lock: threading.Lock = field(default_factory=threading.Lock)


class Digests:
    """The repository's checksum and sha256 of one file, taken in one pass as it is written."""

    def __init__(self, checksum_type: str) -> None:
        self.hashers = {name: hashlib.new(name) for name in {checksum_type, "sha256"}}
        self.checksum_type = checksum_type

    def update(self, data: bytes) -> None:
        for hasher in self.hashers.values():
            hasher.update(data)

    def feed(self, path: Path) -> Digests:
        with path.open("rb") as handle:
            while chunk := handle.read(fsutil.CHUNK):
                self.update(chunk)
        return self

    @property
    def checksum(self) -> str:
        return self.hashers[self.checksum_type].hexdigest()

    @property
    def sha256(self) -> str:
        return self.hashers["sha256"].hexdigest()


def fetch_all(
    fetches: Sequence[Fetch],
    directory: Path,
    check_signature: Callable[[PinnedPackage, Path], None],
    workers: int = 8,
) -> FetchReport:
    """Every RPM into `directory/Packages/`, checked; what was fetched and what reused."""
    packages = directory / PACKAGES_DIR
    partial = directory / PARTIAL_DIR
    packages.mkdir(parents=True, exist_ok=True)
    report = FetchReport()
    missing = [f for f in fetches if not _reuse(f, packages / f.package.filename, report)]
    if not missing:
        return report
    partial.mkdir(exist_ok=True)
    progress = TransferProgress("mirror", sum(f.package.size for f in missing), unit="packages")
    progress.items_total = len(missing)
    try:
        with ThreadPoolExecutor(max_workers=max(1, min(workers, len(missing)))) as pool:
            futures = [
                pool.submit(_fetch_one, f, packages, partial, check_signature, report, progress)
                for f in missing
            ]
            for future in futures:
                future.result()
    finally:
        progress.close()
    if not any(partial.iterdir()):
        partial.rmdir()
    return report


def _reuse(fetch: Fetch, path: Path, report: FetchReport) -> bool:
    """A file already in the mirror with the expected digests (nothing to fetch)."""
    package = fetch.package
    if not path.is_file() or path.stat().st_size != package.size:
        return False
    digests = Digests(package.checksum_type).feed(path)
    if digests.checksum != package.checksum or fetch.sha256 not in (None, digests.sha256):
        return False
    with report.lock:
        report.reused.append(package.nevra)
        report.sha256[package.nevra] = digests.sha256
    return True


def _fetch_one(
    fetch: Fetch,
    packages: Path,
    partial: Path,
    check_signature: Callable[[PinnedPackage, Path], None],
    report: FetchReport,
    progress: TransferProgress,
) -> None:
    package = fetch.package
    part = partial / f"{package.filename}.part"
    digests = _download(fetch.url, part, package, progress)
    if digests.checksum != package.checksum:
        part.unlink()
        raise RpmRefused(
            f"{package.filename}: {package.checksum_type} {digests.checksum} is not the "
            f"{package.repo} repository's {package.checksum}: refused"
        )
    if fetch.sha256 not in (None, digests.sha256):
        part.unlink()
        raise RpmRefused(
            f"{package.filename}: sha256 {digests.sha256} is not the lock's {fetch.sha256}: refused"
        )
    check_signature(package, part)
    os.replace(part, packages / package.filename)
    with report.lock:
        report.fetched.append(package.nevra)
        report.bytes_fetched += package.size
        report.sha256[package.nevra] = digests.sha256
    progress.advance(0, items=1)


def authorized_request(url: str) -> urllib.request.Request:
    """A request for `url`; user:password@ in it becomes HTTP basic authentication
    (urllib would take it for part of the host)."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None:
        return urllib.request.Request(url)  # noqa: S310 - a configured repository's URL
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    request = urllib.request.Request(parts._replace(netloc=netloc).geturl())  # noqa: S310
    user = urllib.parse.unquote(parts.username)
    password = urllib.parse.unquote(parts.password or "")
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    return request


def _download(url: str, part: Path, package: PinnedPackage, progress: TransferProgress) -> Digests:
    """The file at `url` into `part` (continuing what is there), hashed on the way."""
    have = part.stat().st_size if part.exists() else 0
    if have > package.size:
        part.unlink()
        have = 0
    if have == package.size:
        progress.advance(have, items=0)
        return Digests(package.checksum_type).feed(part)
    request = authorized_request(url)
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        with urllib.request.urlopen(request, timeout=READ_TIMEOUT) as response:  # noqa: S310
            resumed = bool(have) and response.status == 206
            digests = Digests(package.checksum_type)
            if resumed:
                digests.feed(part)
                progress.advance(have, items=0)
            with part.open("ab" if resumed else "wb") as handle:
                while chunk := response.read(fsutil.CHUNK):
                    handle.write(chunk)
                    digests.update(chunk)
                    progress.advance(len(chunk), items=0)
            return digests
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise BuilderError(f"{proc.redact(url)}: cannot fetch: {reason}") from exc
