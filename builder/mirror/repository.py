"""A directory of RPMs as a yum repository CentOS 7 reads: createrepo_c metadata,
gzip-compressed (CentOS 7's yum reads gz, bz2 and xz, not zstd), with the
source repositories' package groups (comps) merged so `@core` resolves."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path

from builder import proc

COMPS_FILE = "comps.xml"


def createrepo_argv(
    directory: Path, output: Path, rpm_list: Path | None = None, comps: Path | None = None
) -> list[str]:
    argv = ["createrepo_c", "--quiet", "--general-compress-type", "gz"]
    if rpm_list is not None:
        argv += ["--pkglist", str(rpm_list)]
    if comps is not None:
        argv += ["--groupfile", str(comps)]
    return [*argv, "--outputdir", str(output), str(directory)]


def merged_comps(sources: Mapping[str, bytes]) -> bytes | None:
    """One comps document holding every group, category and environment of the sources
    (the first definition of an id wins, in repository order); None when none has any."""
    merged = ET.Element("comps")
    seen: set[tuple[str, str]] = set()
    for name in sources:
        root = ET.fromstring(sources[name])  # noqa: S314 - the repository's own metadata
        for element in root:
            key = (element.tag, element.findtext("id") or "")
            if key not in seen:
                seen.add(key)
                merged.append(element)
    if not len(merged):
        return None
    ET.indent(merged)
    declaration = b'<?xml version="1.0" encoding="UTF-8"?>\n'
    body: bytes = ET.tostring(merged, encoding="utf-8")
    return declaration + body + b"\n"


def write_metadata(directory: Path, comps: bytes | None) -> None:
    """(Re)write `directory/repodata/` for the RPMs under `directory`."""
    groupfile = None
    if comps is not None:
        groupfile = directory / COMPS_FILE
        groupfile.write_bytes(comps)
    directory = directory.resolve()
    groupfile = groupfile.resolve() if groupfile else None
    proc.run(createrepo_argv(directory, directory, comps=groupfile))
