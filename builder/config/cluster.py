"""The cluster's derived facts: the only place they are computed.

From the inventory (cluster.yaml) and the roles: which nodes are masters and
their ZooKeeper numbering (myid), the ZooKeeper connection strings, the Mesos
quorum, /etc/hosts, zoo.cfg, each role set's units in start order, and the
ports the stack's services use. First boot (builder/firstboot/seed.py) writes
them into each node's seed; `builder verify` (builder/verify/contract.py)
selects the same objects to check a node against. Nothing else recomputes
them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from builder.config.model import MASTER_ROLE, SLAVE_ROLE, Cluster, Node, Port, Role

if TYPE_CHECKING:
    from builder.config.load import LoadedConfig

ZK_CLIENT_PORT = 2181
ZK_PEER_PORT = 2888
ZK_ELECTION_PORT = 3888
# Where each Mesos-stack service answers once started (Chronos: its package's
# http_port flag file); `builder verify` checks them on a booted node.
SERVICE_PORTS: Mapping[str, int] = {
    "zookeeper": ZK_CLIENT_PORT,
    "mesos-master": 5050,
    "marathon": 8080,
    "chronos": 4400,
    "mesos-slave": 5051,
}
# The ports a service's peers on other nodes reach it on, besides SERVICE_PORTS.
PEER_PORTS: Mapping[str, tuple[int, ...]] = {"zookeeper": (ZK_PEER_PORT, ZK_ELECTION_PORT)}

ZOOKEEPER_SETTINGS = f"""\
tickTime=2000
initLimit=10
syncLimit=5
dataDir=/var/lib/zookeeper
clientPort={ZK_CLIENT_PORT}
"""


def service_ports(services: Iterable[str]) -> tuple[Port, ...]:
    """The firewall ports the services need, in service order (a role opens them all)."""
    return tuple(
        Port(start=number, end=number)
        for service in services
        if service in SERVICE_PORTS
        for number in (SERVICE_PORTS[service], *PEER_PORTS.get(service, ()))
    )


def start_order(roles: Iterable[Role]) -> tuple[str, ...]:
    """A role set's units in start order: each role's services in turn, none twice."""
    return tuple(dict.fromkeys(service for role in roles for service in role.services))


def masters(cluster: Cluster) -> tuple[Node, ...]:
    """The nodes with the master role, in inventory order (ZooKeeper's myid order)."""
    return tuple(node for node in cluster.nodes if MASTER_ROLE in node.roles)


def quorum(master_count: int) -> int:
    """Mesos' replicated-log quorum: a majority of the masters."""
    return master_count // 2 + 1


def fqdn(cluster: Cluster, node: Node) -> str:
    return f"{node.hostname}.{cluster.domain}" if cluster.domain else node.hostname


def hosts_line(cluster: Cluster, node: Node) -> str:
    names = [fqdn(cluster, node), node.hostname] if cluster.domain else [node.hostname]
    return f"{node.ip} {' '.join(names)}\n"


def hosts_file(cluster: Cluster) -> str:
    """What every node's /etc/hosts holds: localhost and the masters (ZooKeeper's peers,
    the zk URL's hosts). Not every agent: a node resolves the masters and itself, so a
    seed stays the same size however many agents the cluster has."""
    lines = [
        "127.0.0.1   localhost localhost.localdomain localhost4 localhost4.localdomain4\n",
        "::1         localhost localhost.localdomain localhost6 localhost6.localdomain6\n",
    ]
    lines += [hosts_line(cluster, node) for node in masters(cluster)]
    return "".join(lines)


def zoo_cfg(numbered: Mapping[str, int]) -> str:
    """ZooKeeper's configuration: the settings, then every master as server.MYID."""
    servers = "".join(
        f"server.{number}={hostname}:{ZK_PEER_PORT}:{ZK_ELECTION_PORT}\n"
        for hostname, number in numbered.items()
    )
    return ZOOKEEPER_SETTINGS + servers


def role_key(node: Node) -> tuple[str, ...]:
    """A node's role set as `ClusterFacts.services` keys it: sorted role names."""
    return tuple(sorted(node.roles))


@dataclass(frozen=True)
class ClusterFacts:
    """Every derived value of the cluster, computed once (`ClusterFacts.of`)."""

    cluster: Cluster
    masters: tuple[Node, ...]
    master_numbers: Mapping[str, int]  # hostname -> ZooKeeper myid, 1..N in inventory order
    zk_hosts: str  # m1:2181,m2:2181
    zk_url: str  # zk://m1:2181,m2:2181/mesos: Mesos, Marathon's master, Chronos
    marathon_zk: str  # zk://m1:2181,m2:2181/marathon: Marathon's own state
    quorum: int
    hosts: str  # /etc/hosts shared by every node: localhost and the masters (hosts_for)
    zoo_cfg: str
    agents: tuple[str, ...]  # the slaves' names as their agents report them (FQDN)
    services: Mapping[tuple[str, ...], tuple[str, ...]]  # role_key -> units in start order

    @classmethod
    def of(cls, loaded: LoadedConfig) -> ClusterFacts:
        config = loaded.config
        cluster = config.cluster
        chosen = masters(cluster)
        numbers = {master.hostname: number for number, master in enumerate(chosen, start=1)}
        zk_hosts = ",".join(f"{master.hostname}:{ZK_CLIENT_PORT}" for master in chosen)
        return cls(
            cluster=cluster,
            masters=chosen,
            master_numbers=numbers,
            zk_hosts=zk_hosts,
            zk_url=f"zk://{zk_hosts}/mesos",
            marathon_zk=f"zk://{zk_hosts}/marathon",
            quorum=quorum(len(chosen)),
            hosts=hosts_file(cluster),
            zoo_cfg=zoo_cfg(numbers),
            agents=tuple(fqdn(cluster, n) for n in cluster.nodes if SLAVE_ROLE in n.roles),
            services={
                key: start_order(role for name, role in config.roles.items() if name in key)
                for key in dict.fromkeys(role_key(node) for node in cluster.nodes)
            },
        )

    def fqdn(self, node: Node) -> str:
        return fqdn(self.cluster, node)

    def hosts_for(self, node: Node) -> str:
        """The node's /etc/hosts: the shared part, and the node itself unless it is a master."""
        if MASTER_ROLE in node.roles:
            return self.hosts
        return self.hosts + hosts_line(self.cluster, node)

    def units(self, node: Node) -> tuple[str, ...]:
        """The node's units, enabled and started at first boot in this order."""
        return self.services[role_key(node)]
