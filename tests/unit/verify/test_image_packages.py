"""The image layer's package check against a real RPM database, without a VM.

The spec asks rpm, as a CentOS image answers; here Debian's rpm keeps a database
in a scratch directory, a package is recorded in it (rpm --justdb), and the
spec's own command runs against it.
"""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from builder.verify.contract import RolePackage
from builder.verify.specs import test_image as image_specs
from tests.conftest import require_tool
from tests.installer_media import build_rpm


@dataclass
class Result:
    stdout: str
    stderr: str
    rc: int


@dataclass
class RpmHost:
    """A testinfra-like host whose rpm reads the database in `dbpath`."""

    dbpath: Path

    def run(self, command: str, *args: str) -> Result:
        assert command.startswith("rpm ")
        script = command % tuple(shlex.quote(arg) for arg in args)
        script = f"rpm --dbpath {shlex.quote(str(self.dbpath))} {script[4:]}"
        done = subprocess.run(
            ["sh", "-c", script], capture_output=True, text=True, check=False, timeout=60
        )
        return Result(done.stdout, done.stderr, done.returncode)


def _checked(host: RpmHost, name: str) -> tuple[str, object, object, bool | None]:
    seen = []

    def check(what: str, expected: object, found: object, passed: bool | None = None) -> None:
        seen.append((what, expected, found, passed))

    image_specs.test_package_installed(host, RolePackage("master", name), check)
    [entry] = seen
    return entry


@pytest.fixture
def database(tmp_path: Path) -> Path:
    """A database holding chronos 1.0-1 only."""
    require_tool("rpm")
    rpm = build_rpm(tmp_path / "rpms", "chronos")
    dbpath = tmp_path / "db"
    subprocess.run(["rpm", "--dbpath", str(dbpath), "--initdb"], check=True)
    subprocess.run(
        ["rpm", "--dbpath", str(dbpath), "-i", "--justdb", "--nodeps", str(rpm)],
        check=True,
        capture_output=True,
    )
    return dbpath


def test_a_package_in_the_rpm_database_passes(database: Path) -> None:
    assert _checked(RpmHost(database), "chronos") == (
        "master: package chronos",
        "installed",
        "installed (1.0-1)",
        True,
    )


def test_a_package_missing_from_the_rpm_database_fails(database: Path) -> None:
    what, expected, found, passed = _checked(RpmHost(database), "mesos")
    assert (what, expected, passed) == ("master: package mesos", "installed", False)
    assert found == "package mesos is not installed"


def test_a_name_that_is_only_a_provide_fails(database: Path) -> None:
    """rpm -q matches package names: `chronos(noarch)` is a provide, not a package."""
    assert _checked(RpmHost(database), "chronos(noarch)")[3] is False


def test_no_rpm_database_at_all_fails(tmp_path: Path) -> None:
    require_tool("rpm")
    found, passed = _checked(RpmHost(tmp_path / "none"), "mesos")[2:]
    assert passed is False
    assert found == "package mesos is not installed"
