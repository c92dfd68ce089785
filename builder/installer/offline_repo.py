"""An offline yum repository for the installer ISO: a directory of RPMs plus metadata.

The user downloads the role's RPMs and their dependencies on a connected
machine; `createrepo_c` writes the metadata into a scratch directory (the
user's directory is only read), and every package the role names must be
provided by one of those RPMs or by the installer media's own repository.
Metadata is gzip-compressed: CentOS 7's yum reads gz, bz2 and xz, not zstd.
The XML parsed here is createrepo_c's own output or the verified source ISO's.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

from builder import proc
from builder.errors import UserError
from builder.mirror.repository import createrepo_argv

REPO_NS = "{http://linux.duke.edu/metadata/repo}"
COMMON_NS = "{http://linux.duke.edu/metadata/common}"
RPM_NS = "{http://linux.duke.edu/metadata/rpm}"


def _open_metadata(path: Path) -> BinaryIO:
    if path.suffix == ".gz":
        return cast(BinaryIO, gzip.open(path, "rb"))
    if path.suffix == ".xz":
        return cast(BinaryIO, lzma.open(path, "rb"))
    if path.suffix == ".bz2":
        return cast(BinaryIO, bz2.open(path, "rb"))
    return path.open("rb")


@dataclass(frozen=True)
class OfflineRepo:
    directory: Path
    rpms: tuple[Path, ...]  # relative to directory
    metadata: Path  # the repodata/ directory createrepo_c wrote
    provides: frozenset[str]  # package names and everything they provide

    @property
    def size(self) -> int:
        return sum((self.directory / rpm).stat().st_size for rpm in self.rpms)


def find_rpms(directory: Path) -> tuple[Path, ...]:
    """The RPM files under `directory`, relative to it, sorted."""
    if not directory.is_dir():
        raise UserError(f"{directory}: --repo-dir is not a directory")
    rpms = tuple(
        sorted(
            path.relative_to(directory)
            for path in directory.rglob("*.rpm")
            if path.is_file() and "repodata" not in path.relative_to(directory).parts
        )
    )
    if not rpms:
        raise UserError(
            f"{directory}: no RPM files in --repo-dir",
            hint="download the role's packages with their dependencies, "
            "e.g. yumdownloader --resolve --destdir DIR PACKAGE...",
        )
    return rpms


def metadata_provides(repodata: Path) -> frozenset[str]:
    """Every package name and `provides` entry in a repository's primary metadata."""
    try:
        repomd = ET.parse(repodata / "repomd.xml").getroot()  # noqa: S314 - ours
    except (OSError, ET.ParseError) as exc:
        raise UserError(f"{repodata}: unreadable repository metadata: {exc}") from exc
    location = next(
        (
            data.find(f"{REPO_NS}location")
            for data in repomd.iter(f"{REPO_NS}data")
            if data.get("type") == "primary"
        ),
        None,
    )
    if location is None or not location.get("href"):
        raise UserError(f"{repodata}/repomd.xml: no primary metadata")
    primary = repodata.parent / str(location.get("href"))
    try:
        with _open_metadata(primary) as handle:
            root = ET.parse(handle).getroot()  # noqa: S314 - ours
    except (OSError, EOFError, ET.ParseError) as exc:
        raise UserError(f"{primary}: unreadable primary metadata: {exc}") from exc
    names: set[str] = set()
    for package in root.iter(f"{COMMON_NS}package"):
        name = package.findtext(f"{COMMON_NS}name")
        if name:
            names.add(name)
        for provides in package.iter(f"{RPM_NS}provides"):
            names.update(str(e.get("name")) for e in provides.iter(f"{RPM_NS}entry"))
    return frozenset(names)


def missing_packages(needed: Iterable[str], provided: frozenset[str]) -> list[str]:
    """Packages (not @groups) that nothing provides."""
    return [name for name in needed if not name.startswith("@") and name not in provided]


def prepare(directory: Path, scratch: Path) -> OfflineRepo:
    """The RPMs of `directory` with metadata written under `scratch` (directory untouched)."""
    rpms = find_rpms(directory)
    scratch.mkdir(parents=True, exist_ok=True)
    rpm_list = scratch / "pkglist"
    rpm_list.write_text("".join(f"{rpm}\n" for rpm in rpms), encoding="utf-8")
    proc.run(createrepo_argv(directory.resolve(), scratch, rpm_list=rpm_list))
    repodata = scratch / "repodata"
    return OfflineRepo(directory.resolve(), rpms, repodata, metadata_provides(repodata))
