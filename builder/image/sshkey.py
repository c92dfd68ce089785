"""The per-build SSH key: Packer logs in with it, the image never keeps it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from builder import proc
from builder.render.kickstart import BUILD_KEY_COMMENT


@dataclass(frozen=True)
class BuildKey:
    private_key: Path
    public_line: str


def generate_build_key(directory: Path) -> BuildKey:
    """A fresh ed25519 key pair in `directory` (which the caller removes after the build)."""
    directory.mkdir(parents=True, exist_ok=True)
    private = directory / "build_key"
    proc.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", BUILD_KEY_COMMENT, "-f", str(private)]
    )
    public = private.with_name("build_key.pub").read_text(encoding="ascii").strip()
    return BuildKey(private, public)
