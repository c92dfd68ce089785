"""Files and directories: atomic writes (a temporary sibling renamed into place on
success), one directory swap, free space, SHA-256."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

CHUNK = 1024 * 1024


def write_file(path: Path, data: bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def replace_tree(out_dir: Path, files: Mapping[str, str], modes: Mapping[str, int]) -> None:
    """Replace out_dir with exactly these files, atomically."""
    parent = out_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=parent))
    try:
        for name, content in files.items():
            path = staging / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8")
            path.chmod(modes.get(name, 0o644))
        swap_dir(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def swap_dir(staging: Path, final: Path) -> None:
    """Put the directory `staging` (a sibling of `final`) at `final`, replacing what is
    there: one rename each way, so `final` is always whole; the old tree goes last."""
    staging.chmod(0o755)
    if not final.exists():
        os.replace(staging, final)
        return
    retired = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-", dir=final.parent))
    os.replace(final, retired / "old")
    os.replace(staging, final)
    shutil.rmtree(retired)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def nearest_existing(directory: Path) -> Path:
    """`directory`, or its closest ancestor that exists."""
    while not directory.exists() and directory != directory.parent:
        directory = directory.parent
    return directory


def free_bytes(directory: Path) -> int:
    """Free space where `directory` is or would be created (nothing is created)."""
    return shutil.disk_usage(nearest_existing(directory)).free
