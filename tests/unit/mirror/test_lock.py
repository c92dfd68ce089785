"""The mirror's lock file: deterministic bytes, a faithful round trip, readable changes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from builder.errors import UserError
from builder.mirror.lock import LockedRpm, MirrorLock, changes
from builder.mirror.resolve import PinnedPackage


def rpm(name: str, version: str = "1.0", release: str = "1.el7", arch: str = "x86_64") -> LockedRpm:
    package = PinnedPackage(
        name=name,
        epoch=0,
        version=version,
        release=release,
        arch=arch,
        repo="mesos",
        location=f"{name}-{version}-{release}.{arch}.rpm",
        checksum_type="sha256",
        checksum="ab" * 32,
        size=1234,
    )
    return LockedRpm(package, "ab" * 32)


def lock(*rpms: LockedRpm) -> MirrorLock:
    return MirrorLock(("slave",), ("@core", "mesos"), {"mesos": "http://example/el7/"}, rpms)


def test_the_same_packages_in_any_order_make_the_same_bytes() -> None:
    a, b = rpm("mesos"), rpm("docker")
    assert lock(a, b).to_json() == lock(b, a).to_json()
    assert lock(a, b).digest == lock(b, a).digest
    assert lock(a).digest != lock(a, b).digest


def test_round_trip(tmp_path: Path) -> None:
    original = lock(rpm("mesos"), rpm("mesos-libs"))
    path = tmp_path / "mirror.lock.json"
    path.write_text(original.to_json())
    read = MirrorLock.read(path)
    assert read == original
    assert '"nevra": "mesos-0:1.0-1.el7.x86_64"' in original.to_json()


def test_changes_name_added_removed_and_changed_packages() -> None:
    old = lock(rpm("mesos", "1.10.0"), rpm("docker"))
    new = lock(rpm("mesos", "1.11.0"), rpm("marathon", arch="noarch"))
    assert changes(old, new) == [
        "- docker-0:1.0-1.el7.x86_64",
        "+ marathon-0:1.0-1.el7.noarch",
        "~ mesos-0:1.10.0-1.el7.x86_64 -> mesos-0:1.11.0-1.el7.x86_64",
    ]
    assert changes(old, old) == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such lock file"),
        ("{not json", "not a mirror lock file"),
        ('{"format": 7}', "lock format 7"),
        ('{"format": 1, "roles": []}', "not a mirror lock file"),
    ],
)
def test_a_bad_lock_is_one_clear_error(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "mirror.lock.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(UserError, match=message):
        MirrorLock.read(path)


def test_every_package_field_is_in_the_lock() -> None:
    entry = rpm("mesos").to_json()
    assert set(entry) >= {f.name for f in dataclasses.fields(PinnedPackage)} | {"nevra", "sha256"}
