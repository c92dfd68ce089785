"""The cluster's derived facts: the only place they are computed.

From the inventory (cluster.yaml) and the roles: which nodes are masters and
their ZooKeeper numbering (myid), the ZooKeeper connection strings, the Mesos
quorum, /etc/hosts, zoo.cfg, each role set's units in start order, and the
ports the stack's services use, and the firewall's shape: which networks reach
which of a node's ports (`firewall_zones`). First boot (builder/firstboot/seed.py) writes
them into each node's seed; `builder verify` (builder/verify/contract.py)
selects the same objects to check a node against. Nothing else recomputes
them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from builder.config.model import MASTER_ROLE, SLAVE_ROLE, Cluster, Node, Port, Role

if TYPE_CHECKING:
    from builder.config.load import LoadedConfig

ZK_CLIENT_PORT = 2181
ZK_PEER_PORT = 2888
ZK_ELECTION_PORT = 3888
MESOS_ZK_PATH = "mesos"
MARATHON_ZK_PATH = "marathon"
# Where each Mesos-stack service answers once started (Chronos: its package's
# http_port flag file); `builder verify` checks them on a booted node.
SERVICE_PORTS: Mapping[str, int] = {
    "zookeeper": ZK_CLIENT_PORT,
    "mesos-master": 5050,
    "marathon": 8080,
    "chronos": 4400,
    "mesos-slave": 5051,
}
# TLS (issue 14, part 4). On a secured cluster every HTTP API speaks TLS with the node's
# certificate. Marathon and Chronos serve HTTPS on their own ports (Marathon's default
# https_port; Chronos' default is the same 8443, which a master running both cannot give
# it); Chronos' plain HTTP answers on loopback only (`http_address`): Chronos before 2.5
# cannot turn it off (its Chaos 0.6.3 has no --disable_http). Mesos' master and agent
# (libprocess SSL, LIBPROCESS_SERVICES) speak TLS on their usual ports, with no plain
# HTTP beside it (no downgrade).
HTTPS_PORTS: Mapping[str, int] = {"marathon": 8443, "chronos": 4443}
LIBPROCESS_SERVICES = ("mesos-master", "mesos-slave")
LOOPBACK_ADDRESS = "127.0.0.1"
# Where each of the HTTPS_PORTS services still listens with plain HTTP (SERVICE_PORTS) on
# a secured cluster: Marathon nowhere (MARATHON_DISABLE_HTTP), Chronos on loopback only.
PLAIN_HTTP_ADDRESSES: Mapping[str, tuple[str, ...]] = {
    "marathon": (),
    "chronos": (LOOPBACK_ADDRESS,),
}


def uses_tls(service: str, secured: bool) -> bool:
    return secured and (service in HTTPS_PORTS or service in LIBPROCESS_SERVICES)


def service_port(service: str, secured: bool) -> int:
    """Where a service answers from other hosts: HTTPS_PORTS on a secured cluster."""
    if secured and service in HTTPS_PORTS:
        return HTTPS_PORTS[service]
    return SERVICE_PORTS[service]


# The ports a service's peers on other nodes reach it on, besides SERVICE_PORTS.
PEER_PORTS: Mapping[str, tuple[int, ...]] = {"zookeeper": (ZK_PEER_PORT, ZK_ELECTION_PORT)}

ZOOKEEPER_SETTINGS = f"""\
tickTime=2000
initLimit=10
syncLimit=5
dataDir=/var/lib/zookeeper
clientPort={ZK_CLIENT_PORT}
"""


# Who reaches what (issue 14). Cluster-internal: ZooKeeper's client and peer ports,
# the Mesos master's and agent's, the task ports (a role's own `ports`) and, where
# Marathon or Chronos run, their libprocess (Mesos' scheduler driver binds an
# ephemeral port the master connects back to): only from the cluster's networks.
CLUSTER_SERVICES = ("zookeeper", "mesos-master", "mesos-slave")
FRAMEWORK_SERVICES = ("marathon", "chronos")
EPHEMERAL_PORTS = Port(start=32768, end=60999)  # Linux's ip_local_port_range default
# The web UIs and APIs, and SSH: only from the admin networks. (Mesos' 5050 is both:
# agents register there, operators browse it.)
ADMIN_SERVICES = ("mesos-master", "marathon", "chronos")
SSH_SERVICE = "ssh"
# What a built image opens until first boot: SSH only.
IMAGE_FIREWALL_SERVICES = (SSH_SERVICE,)
# The default zone keeps only what must stay (DHCPv6's replies, as CentOS' public has).
DEFAULT_ZONE = "public"
DEFAULT_ZONE_SERVICES = ("dhcpv6-client",)
FIREWALLD_ZONES = "/etc/firewalld/zones"


# Authentication (issue 14, part 2): who authenticates where, with which of the
# cluster's secrets (the names of secrets.yaml, builder/config/secrets.py). The one
# home of principals; first boot writes the files, verify and `up` read the same table.
@dataclass(frozen=True)
class Principal:
    name: str  # the principal (Mesos), user (HTTP basic) or digest user (ZooKeeper)
    secret: str  # which secret of secrets.yaml is its password
    what: str


# One secret per principal: an agent's node holds its own, not the frameworks'.
AGENT_PRINCIPAL = Principal("agent", "agent_secret", "Mesos agents registering (CRAM-MD5)")
MARATHON_PRINCIPAL = Principal("marathon", "marathon_secret", "Marathon's framework (CRAM-MD5)")
CHRONOS_PRINCIPAL = Principal("chronos", "chronos_secret", "Chronos' framework (CRAM-MD5)")
HTTP_PRINCIPAL = Principal("admin", "http_password", "the HTTP APIs (basic authentication)")
ZK_MESOS_PRINCIPAL = Principal("mesos", "zookeeper_password", "Mesos in ZooKeeper (digest)")
# Marathon's own: its launcher puts its zk URL, password included, on its command line
# (DESIGN, "Known problems"), so it shares no password with Mesos.
ZK_MARATHON_PRINCIPAL = Principal(
    "marathon", "marathon_zookeeper_password", "Marathon in ZooKeeper (digest)"
)
PRINCIPALS = (
    AGENT_PRINCIPAL,
    MARATHON_PRINCIPAL,
    CHRONOS_PRINCIPAL,
    HTTP_PRINCIPAL,
    ZK_MESOS_PRINCIPAL,
    ZK_MARATHON_PRINCIPAL,
)
# The master's --credentials: the agents' and frameworks' CRAM-MD5 credentials and,
# since the master's basic HTTP authenticator reads the same file, the HTTP user's.
MASTER_CREDENTIALS = (AGENT_PRINCIPAL, MARATHON_PRINCIPAL, CHRONOS_PRINCIPAL, HTTP_PRINCIPAL)
# Which of secrets.yaml's secrets each role's files use: a node gets those of its roles
# only. An agent authenticates to the masters (its credential) and guards its own HTTP API
# (the HTTP user); it reads the leading master's record, which Mesos makes world-readable,
# with a plain zk URL, so it holds no ZooKeeper password, and no keystore's.
KEYSTORE_SECRET = "keystore_password"  # noqa: S105 (a name); the keystores (TLS, phase 2)
ROLE_SECRETS: Mapping[str, tuple[str, ...]] = {
    MASTER_ROLE: tuple(dict.fromkeys([*(p.secret for p in PRINCIPALS), KEYSTORE_SECRET])),
    SLAVE_ROLE: (AGENT_PRINCIPAL.secret, HTTP_PRINCIPAL.secret),
}


def zk_url_has_password(node: Node) -> bool:
    """Whether a secured node's Mesos reaches ZooKeeper as the `mesos` digest user: a
    master's does (it writes the leader's record; /etc/mesos/zk then names the root-only
    MESOS_ZK_URL_FILE), an agent alone's /etc/mesos/zk is the plain URL."""
    return MASTER_ROLE in node.roles


def node_secret_names(node: Node) -> tuple[str, ...]:
    """The secrets the node's roles use, each once, in the roles' order."""
    return tuple(dict.fromkeys(name for role in node.roles for name in ROLE_SECRETS[role]))


# Root-only files first boot writes from the secrets (the flags name their paths).
CREDENTIALS_DIR = "/etc/builder/credentials"
MASTER_CREDENTIALS_FILE = f"{CREDENTIALS_DIR}/mesos-master.json"
AGENT_CREDENTIAL_FILE = f"{CREDENTIALS_DIR}/mesos-agent.json"
AGENT_HTTP_CREDENTIALS_FILE = f"{CREDENTIALS_DIR}/mesos-agent-http.json"
MARATHON_SECRET_FILE = f"{CREDENTIALS_DIR}/marathon.secret"
CHRONOS_SECRET_FILE = f"{CREDENTIALS_DIR}/chronos.secret"
# Mesos' zk URL with its password: the init wrapper passes /etc/mesos/zk's content as
# --zk=/--master=, a command line any local user reads, so /etc/mesos/zk holds
# `file://` and this path, which Mesos reads for a string flag (stout's flag fetch).
MESOS_ZK_URL_FILE = f"{CREDENTIALS_DIR}/mesos-zk.url"
# Where Marathon (an EnvironmentFile) and Chronos (sourced by its launcher) get the HTTP
# user from their environment, not from a flag their launchers would put on the command
# line: both read MESOSPHERE_HTTP_CREDENTIALS (Marathon's HttpConf, Chronos' Chaos).
HTTP_CREDENTIALS_VARIABLE = "MESOSPHERE_HTTP_CREDENTIALS"
MARATHON_DEFAULTS = "/etc/default/marathon"
# The node's TLS files (every node of a secured cluster): the CA's certificate (public:
# the node's own checks and libprocess' peer checks trust it), the node's certificate
# and key (PEM, the key root's: Mesos' libprocess) and on a master the same as a PKCS#12
# keystore (root's), whose password Marathon and Chronos read from their environment, as
# MESOSPHERE_HTTP_CREDENTIALS. An agent's executors get a certificate of their own
# (EXECUTOR_*: its key readable by every user a task may run as), from the node's own
# executors' CA, which only the node's agent trusts besides the cluster CA (AGENT_CA_FILE:
# both certificates); see DESIGN, "TLS".
TLS_DIR = "/etc/builder/tls"
NODE_CA_FILE = f"{TLS_DIR}/ca.crt"
AGENT_CA_FILE = f"{TLS_DIR}/agent-ca.crt"
NODE_CERT_FILE = f"{TLS_DIR}/node.crt"
NODE_KEY_FILE = f"{TLS_DIR}/node.key"
NODE_KEYSTORE_FILE = f"{TLS_DIR}/node.p12"
EXECUTOR_CERT_FILE = f"{TLS_DIR}/executor.crt"
EXECUTOR_KEY_FILE = f"{TLS_DIR}/executor.key"
SHARED_TLS_MODE = 0o644  # the certificates and the executors' key: every user reads them
# Of those, the private keys: with ssm_secrets they travel through SSM, not user-data.
SHARED_KEY_FILES = (EXECUTOR_KEY_FILE,)
KEYSTORE_PATH_VARIABLE = "MESOSPHERE_KEYSTORE_PATH"
KEYSTORE_PASS_VARIABLE = "MESOSPHERE_KEYSTORE_PASS"  # noqa: S105 (a variable's name)
CHRONOS_DEFAULTS = "/etc/default/chronos"
# Mesos' libprocess SSL (Mesos 1.11 docs/ssl.md), from its environment: the init wrapper
# sources /etc/default/mesos (the package's LOGS and ULIMIT kept) for master and agent;
# `export` because older wrappers source it without allexport. The documented secure
# set: TLS 1.2 only (the default), peers' certificates verified against the cluster CA
# by the name or address connected to (`openssl` scheme, 1.9+; MasterInfo holds the IP),
# no downgrade to plain HTTP; ciphers that EL7's OpenSSL 1.0.2 and Java 8 share with
# today's clients (libprocess' default list is RSA/DSS key exchange only). VERIFY_CERT
# too: before 1.10 it is the only name of VERIFY_SERVER_CERT (since, its alias), and
# libprocess ignores a LIBPROCESS_SSL_ name it does not know.
MESOS_DEFAULTS = "/etc/default/mesos"
MESOS_PACKAGE_DEFAULTS = 'LOGS=/var/log/mesos\nULIMIT="-n 8192"\n'
LIBPROCESS_CIPHERS = "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384"
# The agent's executors run with this PATH (Mesos' os::host_default_path) besides the
# SSL variables: --executor_environment_variables replaces what they would get.
EXECUTOR_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def libprocess_ssl(cert_file: str, key_file: str, ca_file: str = NODE_CA_FILE) -> dict[str, str]:
    """The LIBPROCESS_SSL_* variables of a libprocess process with this certificate,
    trusting `ca_file`."""
    return {
        "LIBPROCESS_SSL_ENABLED": "true",
        "LIBPROCESS_SSL_SUPPORT_DOWNGRADE": "false",
        "LIBPROCESS_SSL_CERT_FILE": cert_file,
        "LIBPROCESS_SSL_KEY_FILE": key_file,
        "LIBPROCESS_SSL_CA_FILE": ca_file,
        "LIBPROCESS_SSL_VERIFY_CERT": "true",
        "LIBPROCESS_SSL_VERIFY_SERVER_CERT": "true",
        "LIBPROCESS_SSL_HOSTNAME_VALIDATION_SCHEME": "openssl",
        "LIBPROCESS_SSL_VERIFY_IPADD": "true",
        "LIBPROCESS_SSL_CIPHERS": LIBPROCESS_CIPHERS,
    }


# Mesos' master, Marathon and Chronos trust the cluster CA; an agent (and so a master's
# Mesos on a master,slave: /etc/default/mesos serves both) its executors' CA too; the
# executors the cluster CA (they reach the agent).
NODE_LIBPROCESS_SSL = libprocess_ssl(NODE_CERT_FILE, NODE_KEY_FILE)
AGENT_LIBPROCESS_SSL = libprocess_ssl(NODE_CERT_FILE, NODE_KEY_FILE, AGENT_CA_FILE)
EXECUTOR_LIBPROCESS_SSL = libprocess_ssl(EXECUTOR_CERT_FILE, EXECUTOR_KEY_FILE)


def mesos_libprocess_ssl(node: Node) -> dict[str, str]:
    """What /etc/default/mesos exports on the node."""
    return AGENT_LIBPROCESS_SSL if SLAVE_ROLE in node.roles else NODE_LIBPROCESS_SSL


# The realm each API names in its 401 (Mesos' constants; Marathon's --http_realm default).
HTTP_REALMS: Mapping[str, str] = {
    "mesos-master": "mesos-master-readonly",
    "mesos-slave": "mesos-agent-readonly",
    "marathon": "Mesosphere",
    "chronos": "Mesosphere",
}
# What an unauthenticated client must be refused on each API, asked where it needs auth.
HTTP_CHECK_PATHS: Mapping[str, str] = {
    "mesos-master": "/master/flags",
    "mesos-slave": "/state",
    "marathon": "/v2/info",
    "chronos": "/scheduler/jobs",
}


def zk_url(zk_hosts: str, path: str, user: str | None = None, password: str | None = None) -> str:
    """A ZooKeeper URL as Mesos and Marathon read it: zk://[user:password@]hosts/path."""
    credentials = f"{user}:{password}@" if user is not None else ""
    return f"zk://{credentials}{zk_hosts}/{path}"


def _port(number: int) -> Port:
    return Port(start=number, end=number)


def cluster_ports(roles: Iterable[Role]) -> tuple[Port, ...]:
    """What the cluster's networks reach on a node of these roles, each port once."""
    roles = list(roles)
    services = start_order(roles)
    ports = [
        _port(number)
        for service in services
        if service in CLUSTER_SERVICES
        for number in (SERVICE_PORTS[service], *PEER_PORTS.get(service, ()))
    ]
    ports += [port for role in roles for port in role.ports]
    if any(service in FRAMEWORK_SERVICES for service in services):
        ports.append(EPHEMERAL_PORTS)
    return tuple(dict.fromkeys(ports))


def admin_ports(services: Iterable[str], secured: bool) -> tuple[Port, ...]:
    """What the admin networks reach besides SSH: the node's web UIs and APIs."""
    return tuple(_port(service_port(s, secured)) for s in services if s in ADMIN_SERVICES)


@dataclass(frozen=True)
class Access:
    """What one scope of networks reaches on a node: firewalld services and ports."""

    services: tuple[str, ...] = ()
    ports: tuple[Port, ...] = ()

    def __or__(self, other: Access) -> Access:
        return Access(
            tuple(dict.fromkeys((*self.services, *other.services))),
            tuple(dict.fromkeys((*self.ports, *other.ports))),
        )


@dataclass(frozen=True)
class FirewallZone:
    """A firewalld zone: its sources (disjoint from every other zone's) and what they reach."""

    name: str
    sources: tuple[str, ...]
    access: Access

    @property
    def path(self) -> str:
        return f"{FIREWALLD_ZONES}/{self.name}.xml"

    @property
    def xml(self) -> str:
        """The zone file as firewalld reads it from /etc/firewalld/zones/."""
        return zone_xml(self.name, self.access, self.sources)


def zone_xml(name: str, access: Access, sources: Sequence[str] = ()) -> str:
    lines = [
        '<?xml version="1.0" encoding="utf-8"?>',
        "<zone>",
        f"  <short>{name}</short>",
        "  <description>Written by builder's first boot (cluster.yaml).</description>",
        *(f'  <service name="{service}"/>' for service in access.services),
        *(
            f'  <port protocol="{port.protocol}" port="{port.firewalld.split("/")[0]}"/>'
            for port in access.ports
        ),
        *(f'  <source address="{source}"/>' for source in sources),
        "</zone>",
    ]
    return "\n".join(lines) + "\n"


def disjoint_scopes(
    scoped: Mapping[str, frozenset[str]],
) -> dict[ipaddress.IPv4Network, frozenset[str]]:
    """Networks split into disjoint blocks, each with every scope of every network holding it.

    firewalld takes a source in one zone only, and overlapping sources in two zones
    match in an order it does not promise: 10.0.0.0/24 (cluster) with 10.0.0.5/32
    (admin) becomes 10.0.0.5/32 (cluster and admin) and the rest of the /24 (cluster).
    """
    networks: dict[ipaddress.IPv4Network, frozenset[str]] = {}
    for text, scopes in scoped.items():
        network = ipaddress.IPv4Network(text)
        networks[network] = networks.get(network, frozenset()) | scopes
    # CIDR networks nest or are apart: sorted, each one's enclosing networks are on a
    # stack (O(n log n): a cluster named by its 10,000 nodes' own addresses stays fast).
    ordered = sorted(networks)
    inherited: dict[ipaddress.IPv4Network, frozenset[str]] = {}
    inner: dict[ipaddress.IPv4Network, list[ipaddress.IPv4Network]] = {}
    stack: list[ipaddress.IPv4Network] = []
    for network in ordered:
        while stack and not network.subnet_of(stack[-1]):
            stack.pop()
        outer = inherited[stack[-1]] if stack else frozenset()
        inherited[network] = networks[network] | outer
        if stack:
            inner.setdefault(stack[-1], []).append(network)
        stack.append(network)
    blocks: dict[ipaddress.IPv4Network, frozenset[str]] = {}
    for network in ordered:
        pieces = [network]
        for child in inner.get(network, []):
            pieces = [rest for piece in pieces for rest in _without(piece, child)]
        for piece in pieces:
            blocks[piece] = inherited[network]
    return dict(sorted(blocks.items()))


def _without(
    piece: ipaddress.IPv4Network, inner: ipaddress.IPv4Network
) -> list[ipaddress.IPv4Network]:
    if piece.subnet_of(inner):
        return []
    if inner.subnet_of(piece):
        return list(piece.address_exclude(inner))
    return [piece]


CLUSTER_SCOPE = "cluster"
ADMIN_SCOPE = "admin"
SCOPES = (CLUSTER_SCOPE, ADMIN_SCOPE)


def firewall_zones(
    blocks: Mapping[ipaddress.IPv4Network, frozenset[str]], access: Mapping[str, Access]
) -> tuple[FirewallZone, ...]:
    """One zone per distinct thing reached (blocks grouped by it), named by their scopes."""
    grouped: dict[Access, tuple[list[ipaddress.IPv4Network], set[str]]] = {}
    for block, scopes in blocks.items():
        reached = Access()
        for scope in SCOPES:
            if scope in scopes:
                reached = reached | access[scope]
        if reached == Access():
            continue
        sources, names = grouped.setdefault(reached, ([], set()))
        sources.append(block)
        names.update(scopes)
    # adjacent blocks merged (a cluster named by its nodes' addresses: a few ranges)
    return tuple(
        FirewallZone(
            "-".join(s for s in SCOPES if s in names),
            tuple(str(net) for net in ipaddress.collapse_addresses(sources)),
            reached,
        )
        for reached, (sources, names) in grouped.items()
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
    # role_key -> scope -> what it reaches; the cluster's and admin networks as disjoint
    # blocks with their scopes; role_key -> the zones first boot writes
    access: Mapping[tuple[str, ...], Mapping[str, Access]]
    blocks: Mapping[ipaddress.IPv4Network, frozenset[str]]
    zones: Mapping[tuple[str, ...], tuple[FirewallZone, ...]]
    secured: bool  # cluster.yaml's security: authenticated (not none)

    @classmethod
    def of(cls, loaded: LoadedConfig) -> ClusterFacts:
        config = loaded.config
        cluster = config.cluster
        chosen = masters(cluster)
        numbers = {master.hostname: number for number, master in enumerate(chosen, start=1)}
        zk_hosts = ",".join(f"{master.hostname}:{ZK_CLIENT_PORT}" for master in chosen)
        role_sets = {
            key: [role for name, role in config.roles.items() if name in key]
            for key in dict.fromkeys(role_key(node) for node in cluster.nodes)
        }
        services = {key: start_order(roles) for key, roles in role_sets.items()}
        access = {
            key: {
                CLUSTER_SCOPE: Access(ports=cluster_ports(roles)),
                ADMIN_SCOPE: Access((SSH_SERVICE,), admin_ports(services[key], cluster.secured)),
            }
            for key, roles in role_sets.items()
        }
        scoped: dict[str, frozenset[str]] = {}
        for scope, networks in (
            (CLUSTER_SCOPE, cluster.cluster_networks),
            (ADMIN_SCOPE, cluster.admin_sources),
        ):
            for network in networks:
                scoped[network] = scoped.get(network, frozenset()) | {scope}
        blocks = disjoint_scopes(scoped)
        return cls(
            cluster=cluster,
            masters=chosen,
            master_numbers=numbers,
            zk_hosts=zk_hosts,
            zk_url=zk_url(zk_hosts, MESOS_ZK_PATH),
            marathon_zk=zk_url(zk_hosts, MARATHON_ZK_PATH),
            quorum=quorum(len(chosen)),
            hosts=hosts_file(cluster),
            zoo_cfg=zoo_cfg(numbers),
            agents=tuple(fqdn(cluster, n) for n in cluster.nodes if SLAVE_ROLE in n.roles),
            services=services,
            access=access,
            blocks=blocks,
            zones={key: firewall_zones(blocks, scopes) for key, scopes in access.items()},
            secured=cluster.secured,
        )

    def fqdn(self, node: Node) -> str:
        return fqdn(self.cluster, node)

    def port(self, service: str) -> int:
        """Where the service answers other hosts (HTTPS on a secured cluster's frameworks)."""
        return service_port(service, self.secured)

    def scheme(self, service: str) -> str:
        return "https" if uses_tls(service, self.secured) else "http"

    def serves_tls(self, node: Node) -> bool:
        """Whether the node serves TLS, and so holds a certificate: every node of a
        secured cluster (Mesos' libprocess SSL)."""
        return self.secured

    def has_keystore(self, node: Node) -> bool:
        """Whether the node's certificate comes as a keystore too: a secured master's,
        whose Marathon and Chronos (Java) serve HTTPS from one."""
        return self.secured and MASTER_ROLE in node.roles

    def zk_url_as(self, principal: Principal, password: str) -> str:
        """Mesos' zk URL with a digest user's credentials (its znodes then carry ACLs)."""
        return zk_url(self.zk_hosts, MESOS_ZK_PATH, principal.name, password)

    def marathon_zk_as(self, principal: Principal, password: str) -> str:
        return zk_url(self.zk_hosts, MARATHON_ZK_PATH, principal.name, password)

    def hosts_for(self, node: Node) -> str:
        """The node's /etc/hosts: the shared part, and the node itself unless it is a master."""
        if MASTER_ROLE in node.roles:
            return self.hosts
        return self.hosts + hosts_line(self.cluster, node)

    def units(self, node: Node) -> tuple[str, ...]:
        """The node's units, enabled and started at first boot in this order."""
        return self.services[role_key(node)]

    def firewall(self, node: Node) -> tuple[FirewallZone, ...]:
        """The zones that shape the node's firewall at first boot."""
        return self.zones[role_key(node)]

    def host_zone(self, node: Node, sources: Sequence[str]) -> FirewallZone:
        """A zone where `sources` reach everything the node serves (`builder up`'s host)."""
        scopes = self.access[role_key(node)]
        return FirewallZone("host", tuple(sources), scopes[CLUSTER_SCOPE] | scopes[ADMIN_SCOPE])


DEFAULT_ZONE_XML = zone_xml(DEFAULT_ZONE, Access(services=DEFAULT_ZONE_SERVICES))
