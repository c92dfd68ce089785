"""The mirror's repository metadata: createrepo_c's command, the merged package groups."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from builder.mirror.repository import createrepo_argv, merged_comps


def test_createrepo_argv() -> None:
    assert createrepo_argv(Path("/m"), Path("/m"), comps=Path("/m/comps.xml")) == [
        "createrepo_c",
        "--quiet",
        "--general-compress-type",
        "gz",
        "--groupfile",
        "/m/comps.xml",
        "--outputdir",
        "/m",
        "/m",
    ]
    assert createrepo_argv(Path("/r"), Path("/s"), rpm_list=Path("/l")) == [
        "createrepo_c",
        "--quiet",
        "--general-compress-type",
        "gz",
        "--pkglist",
        "/l",
        "--outputdir",
        "/s",
        "/r",
    ]


def group(group_id: str, *packages: str) -> str:
    members = "".join(f"<packagereq>{name}</packagereq>" for name in packages)
    return f"<group><id>{group_id}</id><packagelist>{members}</packagelist></group>"


def test_groups_of_every_repository_merge_first_definition_wins() -> None:
    base = f"<comps>{group('core', 'bash', 'filesystem')}</comps>".encode()
    extra = f"<comps>{group('core', 'evil')}{group('mesos', 'mesos')}</comps>".encode()
    merged = merged_comps({"base": base, "extras": extra})
    assert merged is not None
    root = ET.fromstring(merged)  # noqa: S314 - made by the test
    assert [g.findtext("id") for g in root.iter("group")] == ["core", "mesos"]
    core = next(g for g in root.iter("group") if g.findtext("id") == "core")
    assert [p.text for p in core.iter("packagereq")] == ["bash", "filesystem"]


def test_no_groups_no_comps() -> None:
    assert merged_comps({}) is None
    assert merged_comps({"base": b"<comps/>"}) is None
