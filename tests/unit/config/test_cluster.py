"""The cluster's derived facts (builder/config/cluster.py) and the ports a role opens."""

from __future__ import annotations

import ipaddress
import time
from pathlib import Path

import pytest

from builder.config.cluster import (
    DEFAULT_ZONE,
    ROLE_SECRETS,
    SCOPES,
    SERVICE_PORTS,
    ZK_CLIENT_PORT,
    ZK_ELECTION_PORT,
    ZK_PEER_PORT,
    ClusterFacts,
    FirewallZone,
    disjoint_scopes,
    node_secret_names,
)
from builder.config.load import LoadedConfig, load_config
from builder.config.model import Node
from builder.config.roles import compose
from builder.config.secrets import SECRET_NAMES
from builder.errors import ConfigError
from tests.conftest import generated_cluster_yaml


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
    opened = [port.start for port in facts.access[("master", "slave")]["cluster"].ports]
    assert opened[:3] == [ZK_CLIENT_PORT, ZK_PEER_PORT, ZK_ELECTION_PORT]


MASTER_CLUSTER = ["2181/tcp", "2888/tcp", "3888/tcp", "5050/tcp", "32768-60999/tcp"]
SLAVE_CLUSTER = ["5051/tcp", "31000-32000/tcp"]


def _opened(zone: FirewallZone) -> tuple[str, tuple[str, ...], list[str], list[str]]:
    return (
        zone.name,
        zone.sources,
        list(zone.access.services),
        [port.firewalld for port in zone.access.ports],
    )


def test_the_default_cluster_is_admin_of_itself(loaded: LoadedConfig) -> None:
    """admin_networks unset: the cluster's network reaches everything, in ONE zone
    (firewalld takes a source in one zone only)."""
    facts = ClusterFacts.of(loaded)
    [test166, test167] = loaded.config.cluster.nodes
    assert [_opened(z) for z in facts.firewall(test166)] == [
        (
            "cluster-admin",
            ("10.86.255.0/24",),
            ["ssh"],
            # a secured cluster's Marathon and Chronos: HTTPS only
            [*MASTER_CLUSTER[:4], *SLAVE_CLUSTER, MASTER_CLUSTER[4], "8443/tcp", "4443/tcp"],
        )
    ]
    # a slave serves no UI: its admins reach SSH only, besides the cluster's ports
    assert [_opened(z) for z in facts.firewall(test167)] == [
        ("cluster-admin", ("10.86.255.0/24",), ["ssh"], SLAVE_CLUSTER)
    ]


def test_an_admin_host_inside_the_cluster_network_is_cut_out_of_it(config_copy: Path) -> None:
    """One admin address in the cluster's /24: it gets every port, the rest of the /24 the
    cluster's ports only, and no two zones share an address."""
    cluster = config_copy / "cluster.yaml"
    cluster.write_text(
        cluster.read_text().replace(
            "network: 10.86.255.0/24", "network: 10.86.255.0/24\nadmin_networks: [10.86.255.166/32]"
        )
    )
    facts = ClusterFacts.of(load_config(config_copy))
    test166 = facts.cluster.nodes[0]
    cluster_zone, both = facts.firewall(test166)
    assert both.name == "cluster-admin"
    assert both.sources == ("10.86.255.166/32",)
    assert [p.firewalld for p in both.access.ports][-2:] == ["8443/tcp", "4443/tcp"]
    assert both.access.services == ("ssh",)
    assert cluster_zone.name == "cluster"
    assert cluster_zone.access.services == ()
    assert "8443/tcp" not in [p.firewalld for p in cluster_zone.access.ports]
    rest = [ipaddress.IPv4Network(s) for s in cluster_zone.sources]
    covered = {a for net in rest for a in net}
    assert len(covered) == 255 == sum(net.num_addresses for net in rest)
    assert ipaddress.IPv4Address("10.86.255.166") not in covered


def test_admin_networks_outside_the_cluster_reach_only_ssh_and_the_uis(
    config_copy: Path,
) -> None:
    cluster = config_copy / "cluster.yaml"
    cluster.write_text(
        cluster.read_text().replace(
            "network: 10.86.255.0/24",
            "networks: [10.86.255.0/24]\nadmin_networks: [192.0.2.0/24, 198.51.100.7/32]",
        )
    )
    facts = ClusterFacts.of(load_config(config_copy))
    [test166, test167] = facts.cluster.nodes
    assert [_opened(z) for z in facts.firewall(test166)] == [
        (
            "cluster",
            ("10.86.255.0/24",),
            [],
            [*MASTER_CLUSTER[:4], *SLAVE_CLUSTER, MASTER_CLUSTER[4]],
        ),
        (
            "admin",
            ("192.0.2.0/24", "198.51.100.7/32"),
            ["ssh"],
            ["5050/tcp", "8443/tcp", "4443/tcp"],
        ),
    ]
    assert [_opened(z) for z in facts.firewall(test167)] == [
        ("cluster", ("10.86.255.0/24",), [], SLAVE_CLUSTER),
        ("admin", ("192.0.2.0/24", "198.51.100.7/32"), ["ssh"], []),
    ]


def test_with_no_network_named_the_cluster_is_its_nodes(config_copy: Path) -> None:
    cluster = config_copy / "cluster.yaml"
    cluster.write_text(cluster.read_text().replace("network: 10.86.255.0/24\n", ""))
    facts = ClusterFacts.of(load_config(config_copy))
    [zone] = facts.firewall(facts.cluster.nodes[1])
    # the nodes' own addresses, adjacent ones merged
    assert zone.sources == ("10.86.255.166/31",)


def test_many_nodes_named_by_their_addresses_make_few_sources(config_copy: Path) -> None:
    """No network named: 10,000 /32s, split and grouped fast, adjacent ones merged (the
    generated inventory's .1-.250 of 40 /24s: 13 CIDRs each). A large cluster should name
    its network: then a seed lists one source whatever the node count."""
    (config_copy / "cluster.yaml").write_text(generated_cluster_yaml(10000))
    started = time.monotonic()
    facts = ClusterFacts.of(load_config(config_copy))
    [zone] = facts.firewall(facts.cluster.nodes[-1])
    assert time.monotonic() - started < 30  # quadratic splitting took minutes
    assert len(zone.sources) == 13 * 40
    covered = sum(ipaddress.IPv4Network(s).num_addresses for s in zone.sources)
    assert covered == 10000


@pytest.mark.parametrize(
    ("scoped", "expected"),
    [
        ({"10.0.0.0/24": {"cluster"}, "10.0.0.0/24 ": {"admin"}}, None),
        (
            {"10.0.0.0/30": {"cluster"}, "10.0.0.1/32": {"admin"}},
            {
                "10.0.0.0/32": {"cluster"},
                "10.0.0.1/32": {"cluster", "admin"},
                "10.0.0.2/31": {"cluster"},
            },
        ),
        (
            {"10.0.0.0/8": {"admin"}, "10.1.0.0/16": {"cluster"}, "10.1.2.0/24": {"admin"}},
            None,
        ),
        ({"10.0.0.0/24": {"cluster"}, "192.0.2.0/24": {"admin"}}, None),
    ],
    ids=["same-network", "host-in-range", "three-deep", "apart"],
)
def test_blocks_are_disjoint_and_keep_every_scope(
    scoped: dict[str, set[str]], expected: dict[str, set[str]] | None
) -> None:
    given = {
        k.strip(): frozenset(v) | frozenset(scoped.get(k.strip(), set())) for k, v in scoped.items()
    }
    blocks = disjoint_scopes(given)
    if expected is not None:
        assert {str(k): set(v) for k, v in blocks.items()} == expected
    nets = list(blocks)
    assert not any(a.overlaps(b) for i, a in enumerate(nets) for b in nets[i + 1 :])
    for text, scopes in given.items():
        network = ipaddress.IPv4Network(text)
        inside = [b for b in nets if b.subnet_of(network)]
        # every address of every network is in a block with (at least) its scopes
        assert sum(b.num_addresses for b in inside) == network.num_addresses
        assert all(scopes <= blocks[b] for b in inside)


def test_zone_names_fit_firewalld(loaded: LoadedConfig) -> None:
    """firewalld refuses zone names over 17 characters (iptables' chain names)."""
    names = ["-".join(SCOPES), "host", DEFAULT_ZONE]
    assert all(len(name) <= 17 for name in names)


def test_up_host_zone_reaches_everything_the_node_serves(loaded: LoadedConfig) -> None:
    facts = ClusterFacts.of(loaded)
    test167 = facts.cluster.nodes[1]
    zone = facts.host_zone(test167, ["10.0.2.2/32"])
    assert _opened(zone) == ("host", ("10.0.2.2/32",), ["ssh"], SLAVE_CLUSTER)
    assert '<source address="10.0.2.2/32"/>' in zone.xml


@pytest.mark.parametrize(
    ("line", "key", "message"),
    [
        ("networks: [10.86.255.1/24]", "cluster.networks[0]", "has host bits set"),
        ("admin_networks: [10.86.255.0/33]", "cluster.admin_networks[0]", "not an IPv4 network"),
        ("admin_networks: [ops]", "cluster.admin_networks[0]", "not an IPv4 network"),
        ("admin_networks: 10.0.0.0/8", "cluster.admin_networks", "tuple"),
        ("networks: [10.86.255.0/24]", "cluster.networks", "use one"),
        ("networks: [10.86.254.0/24]", "nodes[0].ip", "outside the cluster's network"),
    ],
    ids=["host-bits", "prefix", "word", "not-a-list", "both-keys", "node-outside"],
)
def test_bad_networks_are_located(config_copy: Path, line: str, key: str, message: str) -> None:
    cluster = config_copy / "cluster.yaml"
    text = cluster.read_text()
    if line.startswith("networks:") and "254" in line:
        text = text.replace("network: 10.86.255.0/24\n", "")
    cluster.write_text(text.replace("nodes:", f"{line}\nnodes:", 1))
    with pytest.raises(ConfigError) as caught:
        load_config(config_copy)
    problem = caught.value.problems[0]  # node-outside: both nodes are
    written = cluster.read_text().splitlines()
    at = key.removeprefix("cluster.").split("[")[0].split(".")[0]
    assert problem.line is not None
    assert written[problem.line - 1].startswith(f"{at}:") or at == "nodes"
    assert key.removeprefix("cluster.") == problem.key
    assert message in problem.message


def test_every_secret_belongs_to_a_role_and_an_agent_holds_its_own_only() -> None:
    """ROLE_SECRETS covers secrets.yaml's names; an agent's are its credential's and the
    HTTP user's (no ZooKeeper password: its zk URL is plain), a master,slave has all."""
    assert set().union(*ROLE_SECRETS.values()) == set(SECRET_NAMES)
    assert ROLE_SECRETS["slave"] == ("agent_secret", "http_password")
    both = Node.model_validate({"hostname": "n1", "ip": "10.0.0.1", "roles": ["master", "slave"]})
    assert set(node_secret_names(both)) == set(SECRET_NAMES)
    assert len(node_secret_names(both)) == len(SECRET_NAMES)
