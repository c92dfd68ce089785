"""The build manifest (output/ROLE/manifest.json): what a build made, read back by the
build's cache check and by `builder publish`.

This is the one home of the manifest's file name, its shape and the image
files' names (mesos-SLUG.qcow2, mesos-SLUG.raw; the stem is Packer's vm_name).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from builder.render.packer_template import image_name

MANIFEST = "manifest.json"


class ImageFormat(StrEnum):
    QCOW2 = "qcow2"
    RAW = "raw"


def image_file(slug: str, fmt: ImageFormat) -> str:
    """mesos-SLUG.qcow2 or mesos-SLUG.raw."""
    return f"{image_name(slug)}.{fmt}"


class ManifestError(ValueError):
    """A manifest.json that is not valid JSON or not a build manifest."""


@dataclass(frozen=True)
class Fingerprint:
    """Size and mtime when the file was hashed: a file that still has them is that file."""

    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: Path) -> Fingerprint:
        stat = path.stat()
        return cls(stat.st_size, stat.st_mtime_ns)


@dataclass(frozen=True)
class Artifact:
    path: str  # relative to the manifest's directory
    format: str
    sha256: str
    fingerprint: Fingerprint

    def unchanged(self, directory: Path) -> bool:
        path = directory / self.path
        return path.is_file() and Fingerprint.of(path) == self.fingerprint


@dataclass(frozen=True)
class SourceIso:
    path: str | None
    sha256: str


@dataclass(frozen=True)
class PackerRecord:
    version: str
    builds: tuple[Any, ...]  # Packer's own manifest entries, as Packer wrote them


@dataclass(frozen=True)
class Tools:
    builder: str
    qemu: str | None


@dataclass(frozen=True)
class BuildManifest:
    role: str  # the label, e.g. master,slave
    roles: tuple[str, ...]
    target: str
    input_digest: str
    source_iso: SourceIso
    accelerator: str
    artifacts: tuple[Artifact, ...]
    packer: PackerRecord
    tools: Tools
    started: str
    finished: str
    verified: bool
    mirror_lock: str | None = None  # the digest of the mirror's lock it installed from

    def artifact(self, fmt: ImageFormat) -> Artifact | None:
        return next((a for a in self.artifacts if a.format == fmt), None)

    def unchanged(self, directory: Path) -> bool:
        """Every artifact is still the file that was hashed."""
        return all(artifact.unchanged(directory) for artifact in self.artifacts)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> BuildManifest:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ManifestError(f"not valid JSON: {exc}") from exc
        try:
            return cls._from_dict(data)
        except (KeyError, TypeError, AttributeError) as exc:
            raise ManifestError(f"not a build manifest: {type(exc).__name__}: {exc}") from exc

    @classmethod
    def _from_dict(cls, data: dict[str, Any]) -> BuildManifest:
        artifacts = tuple(
            Artifact(
                str(a["path"]), str(a["format"]), str(a["sha256"]), Fingerprint(**a["fingerprint"])
            )
            for a in data["artifacts"]
        )
        return cls(
            role=str(data["role"]),
            roles=tuple(data["roles"]),
            target=str(data["target"]),
            input_digest=str(data["input_digest"]),
            source_iso=SourceIso(**data["source_iso"]),
            accelerator=str(data["accelerator"]),
            artifacts=artifacts,
            packer=PackerRecord(str(data["packer"]["version"]), tuple(data["packer"]["builds"])),
            tools=Tools(**data["tools"]),
            started=str(data["started"]),
            finished=str(data["finished"]),
            verified=bool(data["verified"]),
            mirror_lock=data.get("mirror_lock"),
        )

    @classmethod
    def read(cls, directory: Path) -> BuildManifest | None:
        """DIRECTORY/manifest.json, or None when there is none."""
        try:
            text = (directory / MANIFEST).read_text()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ManifestError(f"cannot read: {exc.strerror or exc}") from exc
        return cls.from_json(text)

    def write(self, directory: Path) -> None:
        (directory / MANIFEST).write_text(self.to_json())
