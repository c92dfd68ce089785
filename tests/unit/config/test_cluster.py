"""The cluster's derived facts (builder/config/cluster.py) and the ports a role opens."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.config.cluster import (
    SERVICE_PORTS,
    ZK_CLIENT_PORT,
    ZK_ELECTION_PORT,
    ZK_PEER_PORT,
    ClusterFacts,
)
from builder.config.load import LoadedConfig, load_config
from builder.config.roles import compose


def _with_cluster(config_copy: Path, text: str) -> LoadedConfig:
    (config_copy / "cluster.yaml").write_text(text)
    return load_config(config_copy)


def test_default_cluster_facts(loaded: LoadedConfig) -> None:
    facts = ClusterFacts.of(loaded)
    assert facts.zk_hosts == "test166:2181"
    assert facts.zk_url == "zk://test166:2181/mesos"
    assert facts.marathon_zk == "zk://test166:2181/marathon"
    assert facts.quorum == 1
    assert [m.hostname for m in facts.masters] == ["test166"]
    assert facts.master_numbers == {"test166": 1}
    assert facts.agents == ("test166", "test167")
    assert facts.zoo_cfg == (
        "tickTime=2000\ninitLimit=10\nsyncLimit=5\ndataDir=/var/lib/zookeeper\n"
        "clientPort=2181\nserver.1=test166:2888:3888\n"
    )
    assert facts.hosts.endswith("localdomain6\n10.86.255.166 test166\n")
    [test166, test167] = loaded.config.cluster.nodes
    # A node resolves the masters and itself, not every agent.
    assert facts.hosts_for(test166) == facts.hosts
    assert facts.hosts_for(test167) == facts.hosts + "10.86.255.167 test167\n"
    # The image's role set and the seed start the same units in the same order.
    assert facts.units(test166) == compose(loaded, ("master", "slave")).services
    assert facts.units(test167) == ("docker", "mesos-slave")


@pytest.mark.parametrize(
    ("hosts", "url", "quorum"),
    [
        (["m1"], "zk://m1:2181/mesos", 1),
        (["m1", "m2", "m3"], "zk://m1:2181,m2:2181,m3:2181/mesos", 2),
        (["m1", "m2", "m3", "m4", "m5"], "zk://m1:2181,m2:2181,m3:2181,m4:2181,m5:2181/mesos", 3),
    ],
)
def test_zk_url_and_quorum_follow_the_masters(
    config_copy: Path, hosts: list[str], url: str, quorum: int
) -> None:
    nodes = "".join(
        f"  - {{hostname: {h}, ip: 10.0.0.{i + 1}, roles: [master]}}\n" for i, h in enumerate(hosts)
    )
    loaded = _with_cluster(
        config_copy,
        f"name: c\ndomain: example.org\nnodes:\n{nodes}"
        "  - {hostname: s1, ip: 10.0.0.100, roles: [slave]}\n",
    )
    facts = ClusterFacts.of(loaded)
    assert facts.zk_url == url
    assert facts.quorum == quorum
    assert facts.master_numbers == {h: i for i, h in enumerate(hosts, start=1)}
    assert facts.zoo_cfg.endswith(
        "".join(f"server.{i}={h}:2888:3888\n" for i, h in enumerate(hosts, start=1))
    )
    assert facts.agents == ("s1.example.org",)
    assert facts.hosts.endswith(f"10.0.0.{len(hosts)} {hosts[-1]}.example.org {hosts[-1]}\n")
    [slave] = [n for n in loaded.config.cluster.nodes if n.hostname == "s1"]
    assert facts.hosts_for(slave).endswith("10.0.0.100 s1.example.org s1\n")


def test_zookeeper_ports_are_the_constants(loaded: LoadedConfig) -> None:
    """zoo.cfg, the ZooKeeper URL and the master's firewall all say the same three ports."""
    facts = ClusterFacts.of(loaded)
    assert f"clientPort={ZK_CLIENT_PORT}\n" in facts.zoo_cfg
    assert f":{ZK_PEER_PORT}:{ZK_ELECTION_PORT}\n" in facts.zoo_cfg
    assert facts.zk_hosts.endswith(f":{ZK_CLIENT_PORT}")
    assert SERVICE_PORTS["zookeeper"] == ZK_CLIENT_PORT
    opened = [port.start for port in compose(loaded, ("master",)).ports]
    assert opened[:3] == [ZK_CLIENT_PORT, ZK_PEER_PORT, ZK_ELECTION_PORT]


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (("master",), ["2181/tcp", "2888/tcp", "3888/tcp", "5050/tcp", "8080/tcp", "4400/tcp"]),
        (("slave",), ["5051/tcp", "31000-32000/tcp"]),
        (
            ("master", "slave"),
            [
                *("2181/tcp", "2888/tcp", "3888/tcp", "5050/tcp", "8080/tcp", "4400/tcp"),
                *("5051/tcp", "31000-32000/tcp"),
            ],
        ),
    ],
)
def test_a_role_opens_its_services_ports_then_its_own(
    loaded: LoadedConfig, names: tuple[str, ...], expected: list[str]
) -> None:
    assert [port.firewalld for port in compose(loaded, names).ports] == expected


def test_a_listed_service_port_is_opened_once_and_extras_follow(config_copy: Path) -> None:
    """An older config that still lists the services' ports renders the same firewall."""
    master = config_copy / "roles" / "master.yaml"
    master.write_text(master.read_text() + "ports: [2181, 8080, 9090]\n")
    loaded = load_config(config_copy)
    assert [port.firewalld for port in compose(loaded, ("master",)).ports] == [
        *("2181/tcp", "2888/tcp", "3888/tcp", "5050/tcp", "8080/tcp", "4400/tcp"),
        "9090/tcp",
    ]


def test_a_service_without_a_known_port_opens_nothing(config_copy: Path) -> None:
    slave = config_copy / "roles" / "slave.yaml"
    slave.write_text(slave.read_text().replace('ports: ["31000-32000"]', "ports: []"))
    loaded = load_config(config_copy)
    # docker listens on no port the cluster needs; the agent's own is opened.
    assert [port.firewalld for port in compose(loaded, ("slave",)).ports] == ["5051/tcp"]
