"""Shared fixtures: the embedded config, editable copies of it, and the CLI."""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from builder.config import tls
from builder.config.load import LoadedConfig, embedded_config_dir, load_config
from builder.config.secrets import SECRET_MODE, SECRET_NAMES, SECRETS_FILE, Secrets
from tests.scheduling import LongestFirstScheduling, longest_first

REPO = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI") == "true"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--regen-golden",
        action="store_true",
        help="rewrite tests/golden/ from the current templates instead of comparing",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The long modules first (tests/scheduling.py)."""
    order = {nodeid: index for index, nodeid in enumerate(longest_first([i.nodeid for i in items]))}
    items.sort(key=lambda item: order[item.nodeid])


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    if config.getvalue("dist") != "loadscope":
        return None
    return LongestFirstScheduling(config, log)


def require_tool(program: str) -> str:
    """The program's path. Missing: a failure under CI=true (./run.sh test installs it)."""
    # Console scripts of the test environment live beside its python.
    path = shutil.which(program) or shutil.which(program, path=str(Path(sys.executable).parent))
    if path is None:
        message = f"{program} is not installed (./run.sh test installs it)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def loaded() -> LoadedConfig:
    return load_config(embedded_config_dir())


@pytest.fixture
def config_copy(tmp_path: Path) -> Path:
    """An editable copy of the embedded default config."""
    target = tmp_path / "roles-config"
    shutil.copytree(embedded_config_dir(), target, ignore=shutil.ignore_patterns("__*"))
    return target


@functools.cache
def sample_ca() -> tls.CAMaterial:
    """One CA per test process (openssl takes a few tenths of a second for one)."""
    return tls.make_ca()


def _sample_ca_files() -> tls.ClusterCA:
    """The sample CA in a directory of its own for this process (the node certificates
    its seeds issue are kept there), removed at exit."""
    directory = Path(tempfile.mkdtemp(prefix="builder-sample-ca-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    return tls.write_ca(directory, sample_ca())


# Fixed stand-ins for `builder secrets init`'s random values: a test can search any output
# for them. The CA is a real one (a secured master's seed carries a keystore it issued):
# golden seeds show its certificates and keystores as placeholders (test_seed.py).
SAMPLE_SECRETS = Secrets(
    {name: f"sample-{name.replace('_', '-')}-0123456789" for name in SECRET_NAMES},
    _sample_ca_files(),
)


def write_sample_secrets(config_dir: Path) -> Path:
    """The sample secrets as the config's secrets file (0600, as `secrets init` writes it),
    with a cluster CA beside them."""
    path = config_dir / SECRETS_FILE
    path.write_text("".join(f"{k}: {v}\n" for k, v in SAMPLE_SECRETS.values.items()))
    path.chmod(SECRET_MODE)
    tls.write_ca(config_dir, sample_ca())
    return path


@pytest.fixture
def secured_copy(config_copy: Path) -> Path:
    """The editable copy with the sample secrets beside it (a secured cluster, seedable)."""
    write_sample_secrets(config_copy)
    return config_copy


CliRun = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def builder_cli(tmp_path: Path) -> CliRun:
    """Run `builder ARGS` as a user would: a real process, from an empty directory."""

    def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "builder", *args],
            cwd=cwd or tmp_path,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=300,
            check=False,
        )

    return run


def generated_cluster_yaml(nodes: int, masters: int = 3) -> str:
    """cluster.yaml for `nodes` nodes: the first `masters` masters, the rest slaves."""
    lines = ["name: big", "nodes:"]
    for index in range(nodes):
        role = "master" if index < masters else "slave"
        address = f"10.{1 + index // 62500}.{(index // 250) % 250}.{index % 250 + 1}"
        lines += [f"  - hostname: node{index:05d}", f"    ip: {address}", f"    roles: [{role}]"]
    return "\n".join(lines) + "\n"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (a VM's forward, an emulator)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
