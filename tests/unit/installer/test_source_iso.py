"""The installer ISO: downloaded once into the cache, verified, never used when wrong.

A real HTTP server on 127.0.0.1 serves the file; nothing leaves the machine.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from builder import fsutil
from builder.errors import UserError
from builder.installer import source_iso
from tests import loopback


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, bytes]]:
    content = b"not really an ISO, but bytes with a checksum\n" * 1000
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "CentOS.iso").write_bytes(content)
    handler = functools.partial(
        http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "www")
    )
    with loopback.serving(handler) as url:
        yield f"{url}/CentOS.iso", content


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def test_download_is_verified_and_cached(served: tuple[str, bytes], tmp_path: Path) -> None:
    url, content = served
    digest = hashlib.sha256(content).hexdigest()
    path = source_iso.resolve_iso(url, f"sha256:{digest}")
    assert path == tmp_path / "cache" / "builder" / "iso" / f"{digest}.iso"
    assert path.read_bytes() == content
    assert source_iso.resolve_iso(url, f"sha256:{digest.upper()}") == path  # cached, verified again


def test_a_download_that_does_not_match_is_not_kept(
    served: tuple[str, bytes], tmp_path: Path
) -> None:
    url, _ = served
    with pytest.raises(UserError, match="does not match"):
        source_iso.resolve_iso(url, "sha256:" + "0" * 64)
    iso_dir = tmp_path / "cache" / "builder" / "iso"
    assert not iso_dir.exists() or list(iso_dir.iterdir()) == []


def test_unreachable_mirror_is_a_clear_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once closed
    with pytest.raises(UserError) as caught:
        source_iso.resolve_iso(f"http://127.0.0.1:{port}/x.iso", "sha256:" + "0" * 64)
    assert caught.value.message.startswith(f"cannot download http://127.0.0.1:{port}/x.iso:")
    assert caught.value.hint is not None
    assert "--iso PATH" in caught.value.hint


def test_local_file_is_verified(tmp_path: Path) -> None:
    iso = tmp_path / "local.iso"
    iso.write_bytes(b"abc")
    good = hashlib.sha256(b"abc").hexdigest()
    assert source_iso.resolve_iso(str(iso), f"sha256:{good}") == iso.resolve()
    iso.write_bytes(b"abd")
    with pytest.raises(UserError, match="does not match the expected"):
        source_iso.resolve_iso(str(iso), f"sha256:{good}")


@pytest.mark.parametrize("text", ["sha1:abc", "sha256:xyz", "sha256:" + "0" * 63, "0" * 64])
def test_checksum_form(text: str) -> None:
    with pytest.raises(UserError, match="must be sha256: and 64 hex digits"):
        source_iso.parse_checksum(text)


def test_a_verified_file_is_not_hashed_again_until_it_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    iso = tmp_path / "local.iso"
    iso.write_bytes(b"first content")
    digest = hashlib.sha256(b"first content").hexdigest()
    hashed: list[Path] = []
    real_sha256_of = fsutil.sha256_of

    def counting(path: Path) -> str:
        hashed.append(path)
        return real_sha256_of(path)

    monkeypatch.setattr(fsutil, "sha256_of", counting)
    source_iso.resolve_iso(str(iso), f"sha256:{digest}")
    source_iso.resolve_iso(str(iso), f"sha256:{digest}")
    assert len(hashed) == 1
    # same size, mtime put back: ctime still moves, so it is hashed again and refused
    stat = iso.stat()
    iso.write_bytes(b"other content")
    os.utime(iso, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    with pytest.raises(UserError, match="does not match"):
        source_iso.resolve_iso(str(iso), f"sha256:{digest}")
    assert len(hashed) == 2
    # a remembered file with another expected checksum is hashed (and refused) too
    iso.write_bytes(b"first content")
    source_iso.resolve_iso(str(iso), f"sha256:{digest}")
    with pytest.raises(UserError, match="does not match"):
        source_iso.resolve_iso(str(iso), "sha256:" + "0" * 64)
    assert len(hashed) == 4


def test_the_memo_forgets_files_that_are_gone(tmp_path: Path) -> None:
    for name in ("a.iso", "b.iso"):
        (tmp_path / name).write_bytes(name.encode())
        source_iso.resolve_iso(
            str(tmp_path / name), f"sha256:{hashlib.sha256(name.encode()).hexdigest()}"
        )
    memo = tmp_path / "cache" / "builder" / "verified.json"
    assert len(json.loads(memo.read_text())) == 2
    (tmp_path / "a.iso").unlink()
    (tmp_path / "c.iso").write_bytes(b"c.iso")
    source_iso.resolve_iso(
        str(tmp_path / "c.iso"), f"sha256:{hashlib.sha256(b'c.iso').hexdigest()}"
    )
    assert sorted(Path(name).name for name in json.loads(memo.read_text())) == ["b.iso", "c.iso"]
