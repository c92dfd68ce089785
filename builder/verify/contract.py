"""The image's contract: what `builder verify` expects, selected from the config.

Nothing is computed here: the values are the ones that rendered the image and
the seed (builder/render/provision.py's files and unit states, the composed
role set, builder/config/cluster.py's ClusterFacts, the seed's node_files),
never literals: change a role's file and both the image and its check change.
Two layers: the image right after the build, and a node after first boot.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum

from builder.config.certificates import NOT_KEPT
from builder.config.cluster import (
    AGENT_CA_FILE,
    DEFAULT_ZONE,
    DEFAULT_ZONE_SERVICES,
    EXECUTOR_CERT_FILE,
    EXECUTOR_KEY_FILE,
    HTTP_CHECK_PATHS,
    HTTP_PRINCIPAL,
    HTTP_REALMS,
    IMAGE_FIREWALL_SERVICES,
    MESOS_ZK_PATH,
    NODE_CA_FILE,
    NODE_CERT_FILE,
    NODE_KEY_FILE,
    NODE_KEYSTORE_FILE,
    PLAIN_HTTP_ADDRESSES,
    SERVICE_PORTS,
    SHARED_TLS_MODE,
    ZK_MARATHON_PRINCIPAL,
    ZK_MESOS_PRINCIPAL,
    ClusterFacts,
    FirewallZone,
    Principal,
    uses_tls,
    zk_url_has_password,
)
from builder.config.load import LoadedConfig
from builder.config.model import MASTER_ROLE, SLAVE_ROLE, ManagedFile, Node
from builder.config.roles import RoleSet
from builder.config.secrets import NODE_SECRETS_DIR, Secrets, load_secrets
from builder.firstboot.seed import (
    MASTER_AUTH_FLAGS,
    certificate_files,
    cluster_secrets,
    node_files,
    secret_files,
    shared_tls_files,
)
from builder.proc import redact
from builder.render.kickstart import BUILD_KEY_COMMENT
from builder.render.provision import BakedState, image_files, unit_states


class Layer(StrEnum):
    IMAGE = "image"
    NODE = "node"


@dataclass(frozen=True)
class RolePackage:
    role: str
    name: str


@dataclass(frozen=True)
class UnitState:
    unit: str
    state: str  # what `systemctl is-enabled` prints: disabled, masked, enabled


@dataclass(frozen=True)
class ImageContract:
    """True right after the build, before first boot."""

    label: str
    packages: tuple[RolePackage, ...]
    files: tuple[ManagedFile, ...]
    firewall_services: tuple[str, ...]  # all the default zone opens before first boot: no port
    units: tuple[UnitState, ...]
    selinux: str
    users: tuple[str, ...]  # whose password must be locked or a crypt hash
    build_key_comment: str = BUILD_KEY_COMMENT


@dataclass(frozen=True)
class SecretFile:
    """A file holding a secret (or a key every user reads: an agent's executors'):
    checked by owner, mode and digest, never by content."""

    path: str
    digest: str  # the start of the content's SHA-256 (shows nothing of the secret)
    mode: str = "600"  # as `stat -c %a` prints it

    @classmethod
    def of(cls, path: str, content: str | bytes, mode: str = "600") -> SecretFile:
        data = content if isinstance(content, bytes) else content.encode()
        return cls(path, sha256_prefix(data), mode)


DIGEST_SHOWN = 16


def sha256_prefix(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()[:DIGEST_SHOWN]


@dataclass(frozen=True)
class PlainHttp:
    """A service that serves HTTPS on a secured cluster: its plain HTTP port listens on
    exactly these addresses (none: it does not listen at all)."""

    service: str
    port: int
    addresses: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"{self.service}:{self.port}"


@dataclass(frozen=True)
class HttpApi:
    """An API a secured node serves: without basic authentication, 401 naming the realm."""

    service: str
    url: str
    realm: str

    @property
    def name(self) -> str:
        return self.service


@dataclass(frozen=True)
class HttpLogin:
    """How the node's own checks log in: the user and the root-only file with the password
    (the password itself is read on the node, never carried here)."""

    user: str
    password_file: str


# ZooKeeper's permission bits (READ 1, WRITE 2, CREATE 4, DELETE 8, ADMIN 16).
ZK_PERM_READ = 1
ZK_PERMS_ALL = 31


@dataclass(frozen=True)
class MasterApi:
    zk_url: str  # the masters' (as shown: a URL's credentials redacted)
    quorum: int
    marathon_zk: str
    marathon_master: str  # Marathon's --master: the leader's record is world-readable
    agents: tuple[str, ...]  # the inventory's slaves (hostnames as agents report them)
    every_agent: bool  # all of them must be registered (--cluster), not only some
    zk_path: str = f"/{MESOS_ZK_PATH}"  # where the masters contend (json.info_ znodes)
    # the ACL of the znodes Mesos creates (the zk path, the leader's record) as
    # "scheme:user perms", sorted: creator-all for its digest user and world-read with
    # credentials (Mesos' EVERYONE_READ_CREATOR_ALL), else open to all
    znode_acl: tuple[str, ...] = (f"world:anyone {ZK_PERMS_ALL}",)
    # the authentication flags as the running master reports them at /master/flags
    auth_flags: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class NodeContract:
    """True once first boot has run."""

    hostname: str
    address: str  # the inventory IP: Mesos binds its --ip, so the HTTP checks ask there
    roles: tuple[str, ...]
    files: tuple[tuple[str, str], ...]  # path, exact content
    services: tuple[str, ...]  # enabled and running
    idle_units: tuple[str, ...]  # the other stack units: never started
    listening: tuple[tuple[str, int], ...]  # service, port
    plain_http: tuple[PlainHttp, ...]  # a secured node's TLS services: where HTTP still is
    default_zone: str  # firewalld's, emptied of all but DEFAULT_ZONE_SERVICES
    default_zone_services: tuple[str, ...]
    zones: tuple[FirewallZone, ...]  # active, each with exactly its sources, services, ports
    secret_files: tuple[SecretFile, ...]  # root's, 0600, by digest (never by content)
    master: MasterApi | None
    slave_zk_url: str | None
    apis: tuple[HttpApi, ...] = ()  # a secured node's APIs, each refusing strangers
    login: HttpLogin | None = None  # a secured node's HTTP user for the checks
    # service -> where the node's checks ask it (https:// where it serves TLS), and the CA
    # certificate on the node they trust then (the name and address must match too)
    endpoints: tuple[tuple[str, str], ...] = ()
    ca_file: str | None = None

    def endpoint(self, service: str) -> str:
        return dict(self.endpoints)[service]


def image_contract(loaded: LoadedConfig, roles: RoleSet) -> ImageContract:
    os_config = loaded.config.os
    packages = tuple(
        RolePackage(name, package)
        for name in roles.names
        for package in loaded.config.roles[name].packages
    )
    states = unit_states(os_config.stack_units, roles.services)
    return ImageContract(
        label=roles.label,
        packages=packages,
        files=image_files(loaded, roles),
        firewall_services=tuple(sorted((*IMAGE_FIREWALL_SERVICES, *DEFAULT_ZONE_SERVICES))),
        units=tuple(UnitState(unit, state.value) for unit, state in states.items()),
        selinux=os_config.selinux,
        users=("root", os_config.admin.name),
    )


def node_contract(
    loaded: LoadedConfig, node: Node, facts: ClusterFacts, every_agent: bool = False
) -> NodeContract:
    services = facts.units(node)
    secrets = cluster_secrets(loaded) if facts.secured else load_secrets(loaded.directory)
    zk_url, marathon_zk = facts.zk_url, facts.marathon_zk
    if facts.secured and secrets is not None:
        zk_url = redact(facts.zk_url_as(ZK_MESOS_PRINCIPAL, _value(secrets, ZK_MESOS_PRINCIPAL)))
        marathon_zk = redact(
            facts.marathon_zk_as(ZK_MARATHON_PRINCIPAL, _value(secrets, ZK_MARATHON_PRINCIPAL))
        )
    master = None
    if MASTER_ROLE in node.roles:
        master = MasterApi(
            zk_url=zk_url,
            quorum=facts.quorum,
            marathon_zk=marathon_zk,
            marathon_master=facts.zk_url,
            agents=facts.agents,
            every_agent=every_agent,
            znode_acl=(
                (f"digest:{ZK_MESOS_PRINCIPAL.name} {ZK_PERMS_ALL}", f"world:anyone {ZK_PERM_READ}")
                if facts.secured
                else (f"world:anyone {ZK_PERMS_ALL}",)
            ),
            auth_flags=tuple(
                (flag, "true" if facts.secured else "false") for flag in MASTER_AUTH_FLAGS
            ),
        )
    states = unit_states(loaded.config.os.stack_units, services)

    # HTTP APIs asked at the inventory address; those on TLS at the FQDN too (the
    # certificate must carry both: the authentication checks ask by name)
    def url(service: str, host: str) -> str:
        return f"{facts.scheme(service)}://{host}:{facts.port(service)}"

    endpoints = {s: url(s, node.ip) for s in HTTP_CHECK_PATHS}
    by_name = {
        s: url(s, facts.fqdn(node) if facts.scheme(s) == "https" else node.ip)
        for s in HTTP_CHECK_PATHS
    }
    apis: tuple[HttpApi, ...] = ()
    login = None
    if facts.secured:
        apis = tuple(
            HttpApi(s, f"{by_name[s]}{HTTP_CHECK_PATHS[s]}", HTTP_REALMS[s])
            for s in services
            if s in HTTP_REALMS
        )
        login = HttpLogin(HTTP_PRINCIPAL.name, f"{NODE_SECRETS_DIR}/{HTTP_PRINCIPAL.secret}")
    return NodeContract(
        hostname=node.hostname,
        address=node.ip,
        roles=tuple(node.roles),
        files=tuple(
            (
                node_files(facts, node)
                | (certificate_files(facts, node, secrets) if secrets else {})
            ).items()
        ),
        services=services,
        idle_units=tuple(u for u, state in states.items() if state is BakedState.MASKED),
        listening=tuple((s, facts.port(s)) for s in services if s in SERVICE_PORTS),
        plain_http=tuple(
            PlainHttp(s, SERVICE_PORTS[s], PLAIN_HTTP_ADDRESSES[s])
            for s in services
            if s in PLAIN_HTTP_ADDRESSES and uses_tls(s, facts.secured)
        ),
        default_zone=DEFAULT_ZONE,
        default_zone_services=DEFAULT_ZONE_SERVICES,
        zones=facts.firewall(node),
        secret_files=_secret_files(facts, node, secrets),
        master=master,
        slave_zk_url=(
            (zk_url if zk_url_has_password(node) else facts.zk_url)
            if SLAVE_ROLE in node.roles
            else None
        ),
        apis=apis,
        login=login,
        endpoints=tuple((s, endpoints[s]) for s in services if s in endpoints),
        ca_file=NODE_CA_FILE if secrets and certificate_files(facts, node, secrets) else None,
    )


def _secret_files(
    facts: ClusterFacts, node: Node, secrets: Secrets | None
) -> tuple[SecretFile, ...]:
    """The node's secret files and shared TLS files by digest; a certificate builder kept
    none for (a seed made before a change, or elsewhere) is expected as NOT_KEPT, which no
    node has."""
    if secrets is None:
        return ()
    files = secret_files(facts, node, secrets, issue=False)
    shared = shared_tls_files(facts, node, secrets, issue=False)
    expected = [SecretFile.of(path, content) for path, content in files.items()]
    expected += [SecretFile.of(path, content, SHARED_MODE) for path, content in shared.items()]
    tls_files = {NODE_KEY_FILE: "600", NODE_CERT_FILE: SHARED_MODE}
    if facts.has_keystore(node):
        tls_files[NODE_KEYSTORE_FILE] = "600"
    if SLAVE_ROLE in node.roles:
        tls_files |= dict.fromkeys(
            (EXECUTOR_CERT_FILE, EXECUTOR_KEY_FILE, AGENT_CA_FILE), SHARED_MODE
        )
    if facts.serves_tls(node):
        seen = {each.path for each in expected}
        expected += [
            SecretFile(path, NOT_KEPT, mode) for path, mode in tls_files.items() if path not in seen
        ]
    return tuple(expected)


SHARED_MODE = f"{SHARED_TLS_MODE:o}"


def _value(secrets: Secrets, principal: Principal) -> str:
    return secrets.values[principal.secret]
