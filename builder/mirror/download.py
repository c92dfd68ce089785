"""Fetching the pinned RPMs: in parallel, resumable, each checked before it is kept.

A file goes to `DIR/.partial/NAME.part` first (an interrupted run continues it
with an HTTP Range request), is checked against its repository's checksum, and
its signature against the repository's GPG keys (`signatures.py`), and only
then is renamed into `DIR/Packages/`. A file already there with the pinned
sha256 is not fetched again.
"""

from __future__ import annotations

import hashlib
import os
import threading
import urllib.error
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


def file_digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with path.open("rb") as handle:
        while chunk := handle.read(fsutil.CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


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
    """A file already in the mirror with the expected digest (nothing to fetch)."""
    if not path.is_file() or path.stat().st_size != fetch.package.size:
        return False
    package = fetch.package
    if file_digest(path, package.checksum_type) != package.checksum:
        return False
    sha256 = file_digest(path, "sha256")
    if fetch.sha256 is not None and sha256 != fetch.sha256:
        return False
    with report.lock:
        report.reused.append(package.nevra)
        report.sha256[package.nevra] = sha256
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
    _download(fetch.url, part, package.size, progress)
    actual = file_digest(part, package.checksum_type)
    if actual != package.checksum:
        part.unlink()
        raise RpmRefused(
            f"{package.filename}: {package.checksum_type} {actual} is not the {package.repo} "
            f"repository's {package.checksum}: refused"
        )
    sha256 = file_digest(part, "sha256")
    if fetch.sha256 is not None and sha256 != fetch.sha256:
        part.unlink()
        raise RpmRefused(
            f"{package.filename}: sha256 {sha256} is not the lock's {fetch.sha256}: refused"
        )
    check_signature(package, part)
    os.replace(part, packages / package.filename)
    with report.lock:
        report.fetched.append(package.nevra)
        report.bytes_fetched += package.size
        report.sha256[package.nevra] = sha256
    progress.advance(0, items=1)


def _download(url: str, part: Path, size: int, progress: TransferProgress) -> None:
    have = part.stat().st_size if part.exists() else 0
    if have > size:
        part.unlink()
        have = 0
    if have == size:
        progress.advance(have, items=0)
        return
    request = urllib.request.Request(url)  # noqa: S310 - a configured repository's URL
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        with urllib.request.urlopen(request, timeout=READ_TIMEOUT) as response:  # noqa: S310
            resumed = have and response.status == 206
            if have and not resumed:
                have = 0  # the server sent the whole file
            progress.advance(have, items=0)
            with part.open("ab" if resumed else "wb") as handle:
                while chunk := response.read(fsutil.CHUNK):
                    handle.write(chunk)
                    progress.advance(len(chunk), items=0)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise BuilderError(f"{proc.redact(url)}: cannot fetch: {reason}") from exc
