"""Fixtures shared by the tests that boot or build with the stand-ins."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.integration.standin import build_standin


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
