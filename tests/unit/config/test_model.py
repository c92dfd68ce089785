"""The embedded default is the seed's cluster; the model's own forms (ports)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from builder.config.load import LoadedConfig
from builder.config.model import Port


def test_default_is_the_seed_cluster(loaded: LoadedConfig) -> None:
    cluster = loaded.config.cluster
    assert [(n.hostname, n.ip, n.roles) for n in cluster.nodes] == [
        ("test166", "10.86.255.166", ("master", "slave")),
        ("test167", "10.86.255.167", ("slave",)),
    ]


def test_slave_flags_are_the_seed_values(loaded: LoadedConfig) -> None:
    files = {spec.path: spec.content for spec in loaded.config.roles["slave"].files}
    assert files["/etc/mesos-slave/containerizers"] == "docker,mesos\n"
    assert files["/etc/mesos-slave/executor_registration_timeout"] == "5mins\n"


def test_master_installs_java_first_and_starts_in_order(loaded: LoadedConfig) -> None:
    master = loaded.config.roles["master"]
    assert master.packages[0] == "java-1.8.0-openjdk-headless"
    assert master.services == ("zookeeper", "mesos-master", "marathon", "chronos")
    assert master.ports == ()


def test_slave_ports_and_services(loaded: LoadedConfig) -> None:
    slave = loaded.config.roles["slave"]
    assert slave.services == ("docker", "mesos-slave")
    assert [p.firewalld for p in slave.ports] == ["31000-32000/tcp"]


def test_no_plaintext_password_in_default(loaded: LoadedConfig) -> None:
    assert loaded.config.os.root_password_hash is None
    assert loaded.config.os.admin.password_hash is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [(5050, "5050/tcp"), ("31000-32000", "31000-32000/tcp"), ("53/udp", "53/udp")],
)
def test_port_short_forms(value: object, expected: str) -> None:
    assert Port.model_validate(value).firewalld == expected


@pytest.mark.parametrize("value", [0, 65536, "70000", "5-3", "x", True, "31000-"])
def test_ports_outside_the_range_are_rejected(value: object) -> None:
    with pytest.raises(ValidationError):
        Port.model_validate(value)


def test_the_readmes_repository_examples_are_valid_repos() -> None:
    """Every ```yaml block of README.md that configures repos passes the model."""
    import re
    import textwrap

    from ruamel.yaml import YAML

    from builder.config.model import Repo
    from tests.conftest import REPO

    blocks = re.findall(r"```yaml\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    # the loader's own parser for YAML 1.2 (a URL inside a flow sequence)
    examples = [YAML(typ="safe", pure=True).load(textwrap.dedent(block)) for block in blocks]
    repos = [repo for example in examples for repo in example.get("repos", [])]
    assert len(repos) >= 2
    for repo in repos:
        Repo.model_validate(repo)
