"""The installer ISO: found or downloaded once, its SHA-256 verified before any use.

`--iso` is a path or an http(s) URL; downloads land in one cache
(`$XDG_CACHE_HOME/builder/iso/`, named by their checksum) and are verified
while they stream. A file whose checksum does not match is never used, and a
download that does not match is not kept.

A file once verified is remembered by its identity (device, inode, size,
mtime and ctime: any write changes ctime, which no tool can set back) in
`$XDG_CACHE_HOME/builder/verified.json`, so an unchanged 1 GB ISO is not
hashed again on every build or remaster.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from builder import fsutil
from builder.config.model import SHA256_CHECKSUM
from builder.errors import UserError

CHUNK = fsutil.CHUNK


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "builder"


def parse_checksum(text: str) -> str:
    """sha256:HEX -> HEX (lower case); the model's own pattern decides what is valid."""
    if not re.fullmatch(SHA256_CHECKSUM, text.lower()):
        raise UserError(f"--iso-checksum must be sha256: and 64 hex digits, not {text!r}")
    return text.lower().removeprefix("sha256:")


def _identity(path: Path) -> list[int]:
    info = path.stat()
    return [info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns]


def _verified_memo() -> Path:
    return cache_dir() / "verified.json"


def _remembered() -> dict[str, object]:
    try:
        memo = json.loads(_verified_memo().read_text())
    except (OSError, ValueError):
        return {}
    return memo if isinstance(memo, dict) else {}


def verify(path: Path, expected: str) -> None:
    key = str(path.resolve())
    memo = _remembered()
    identity = _identity(path)
    if memo.get(key) == {"identity": identity, "sha256": expected}:
        return
    actual = fsutil.sha256_of(path)
    if actual != expected:
        raise UserError(
            f"{path}: sha256 {actual} does not match the expected {expected}",
            hint="a different or damaged ISO; pass --iso-checksum sha256:HEX for another release",
        )
    if _identity(path) == identity:  # unchanged while it was hashed
        memo = {name: entry for name, entry in memo.items() if Path(name).exists()}
        memo[key] = {"identity": identity, "sha256": actual}
        with contextlib.suppress(OSError):  # a read-only cache only costs the next hash
            fsutil.write_file(_verified_memo(), json.dumps(memo, indent=1).encode())


def _download(url: str, target: Path, expected: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=".download.", dir=target.parent)
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310
            while chunk := response.read(CHUNK):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != expected:
            raise UserError(
                f"{url}: downloaded sha256 {digest.hexdigest()} does not match {expected}"
            )
        os.replace(temporary, target)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise UserError(
            f"cannot download {url}: {reason}",
            hint="no network to the mirror? download it elsewhere and pass --iso PATH",
        ) from exc
    finally:
        Path(temporary).unlink(missing_ok=True)


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def local_iso(source: str, checksum: str) -> Path | None:
    """The ISO when it is here already (a local file, or the download cache), verified;
    None when it would have to be downloaded. Never downloads."""
    expected = parse_checksum(checksum)
    if is_url(source):
        cached = cache_dir() / "iso" / f"{expected}.iso"
        return resolve_iso(str(cached), checksum) if cached.is_file() else None
    return resolve_iso(source, checksum)


def resolve_iso(source: str, checksum: str) -> Path:
    """A local, verified copy of the ISO at `source` (a path or an http(s) URL)."""
    expected = parse_checksum(checksum)
    if is_url(source):
        cached = cache_dir() / "iso" / f"{expected}.iso"
        if cached.is_file():
            verify(cached, expected)
            return cached
        _download(source, cached, expected)
        return cached
    path = Path(source)
    if not path.is_file():
        raise UserError(f"{path}: no such ISO file")
    verify(path, expected)
    return path.resolve()
