"""The mirror's lock file: exactly which RPMs a mirror holds, and why.

`DIR/mirror.lock.json` records the request (the role sets and the package specs
they install), the repositories (their names and redacted baseurls), and for
every RPM its NEVRA, sha256, size, repository and location. Sorted keys, no
timestamps: the same resolution writes the same bytes, so its digest names a
package set (a build manifest records it).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builder.errors import UserError
from builder.mirror.resolve import PinnedPackage

LOCK_FILE = "mirror.lock.json"
FORMAT = 1


@dataclass(frozen=True)
class LockedRpm:
    """One RPM of the mirror: its identity and the sha256 of its file."""

    package: PinnedPackage
    sha256: str

    def to_json(self) -> dict[str, Any]:
        package = self.package
        return {
            "nevra": package.nevra,
            "name": package.name,
            "epoch": package.epoch,
            "version": package.version,
            "release": package.release,
            "arch": package.arch,
            "repo": package.repo,
            "location": package.location,
            "checksum_type": package.checksum_type,
            "checksum": package.checksum,
            "size": package.size,
            "sha256": self.sha256,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LockedRpm:
        fields = {key: data[key] for key in PinnedPackage.__dataclass_fields__}
        return cls(PinnedPackage(**fields), str(data["sha256"]))


@dataclass(frozen=True)
class MirrorLock:
    roles: tuple[str, ...]
    specs: tuple[str, ...]
    repos: dict[str, str]  # name -> baseurl, credentials redacted
    rpms: tuple[LockedRpm, ...]

    def to_json(self) -> str:
        document = {
            "format": FORMAT,
            "roles": list(self.roles),
            "specs": list(self.specs),
            "repos": self.repos,
            "rpms": [rpm.to_json() for rpm in sorted(self.rpms, key=lambda r: r.package.nevra)],
        }
        return json.dumps(document, indent=2, sort_keys=True) + "\n"

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    @classmethod
    def read(cls, path: Path) -> MirrorLock:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
            if document.get("format") != FORMAT:
                raise UserError(f"{path}: lock format {document.get('format')!r}, not {FORMAT}")
            return cls(
                roles=tuple(document["roles"]),
                specs=tuple(document["specs"]),
                repos=dict(document["repos"]),
                rpms=tuple(LockedRpm.from_json(entry) for entry in document["rpms"]),
            )
        except FileNotFoundError as exc:
            raise UserError(f"{path}: no such lock file (make the mirror first)") from exc
        except (ValueError, KeyError, TypeError) as exc:
            raise UserError(f"{path}: not a mirror lock file: {exc}") from exc


def changes(old: MirrorLock, new: MirrorLock) -> list[str]:
    """What a re-resolution changed, one line per package: + added, - removed, ~ changed."""
    before = {rpm.package.name + "." + rpm.package.arch: rpm.package for rpm in old.rpms}
    after = {rpm.package.name + "." + rpm.package.arch: rpm.package for rpm in new.rpms}
    lines = []
    for key in sorted(before.keys() | after.keys()):
        was, now = before.get(key), after.get(key)
        if was is None and now is not None:
            lines.append(f"+ {now.nevra}")
        elif now is None and was is not None:
            lines.append(f"- {was.nevra}")
        elif was is not None and now is not None and was.nevra != now.nevra:
            lines.append(f"~ {was.nevra} -> {now.nevra}")
    return lines
