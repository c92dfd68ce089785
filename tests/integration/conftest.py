"""Fixtures shared by the tests that boot or build with the stand-ins."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.integration.rpmrepo import RpmRepos, build_rpmrepo, serve
from tests.integration.standin import build_standin
from tests.integration.vmslots import vm_slots


@pytest.fixture(scope="session")
def standin() -> Path:
    return build_standin()


@pytest.fixture(scope="session")
def ssh_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    key = tmp_path_factory.mktemp("ssh") / "id"
    subprocess.run(
        [
            require_tool("ssh-keygen"),
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "tests",
            "-f",
            str(key),
        ],
        check=True,
    )
    return key


@pytest.fixture(scope="session")
def rpmrepo() -> Iterator[RpmRepos]:
    """The stand-in RPM repositories (tests/fixtures/rpmrepo/), served on 127.0.0.1."""
    root = build_rpmrepo()
    with serve(root) as base_url:
        yield RpmRepos(root, base_url)


@pytest.fixture(scope="module")
def one_vm_slot() -> Iterator[None]:
    """A build module holds one of the host's VM slots (tests/integration/vmslots.py)
    from its first test to its last; a fixture running more builds at once takes the
    others while they run."""
    with vm_slots(1):
        yield
