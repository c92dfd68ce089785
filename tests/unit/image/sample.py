"""A build manifest as `builder build` writes one, for tests that read manifests."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from builder.image.manifest import (
    Artifact,
    BuildManifest,
    Fingerprint,
    PackerRecord,
    SourceIso,
    Tools,
)


def sample_manifest(directory: Path, files: dict[str, str], **changes: Any) -> BuildManifest:
    """A manifest of the files FILE -> FORMAT in DIRECTORY (their fingerprints as they are)."""
    artifacts = tuple(
        Artifact(name, fmt, "f" * 64, Fingerprint.of(directory / name))
        for name, fmt in files.items()
    )
    manifest = BuildManifest(
        role="master",
        roles=("master",),
        target="qemu",
        input_digest="d" * 64,
        source_iso=SourceIso(None, "e" * 64),
        accelerator="tcg",
        artifacts=artifacts,
        packer=PackerRecord("1.6.6", ({"builder_type": "qemu", "files": []},)),
        tools=Tools("0.1.0", None),
        started="2026-11-25T09:00:00+00:00",
        finished="2026-11-25T10:00:00+00:00",
        verified=False,
    )
    return dataclasses.replace(manifest, **changes)
