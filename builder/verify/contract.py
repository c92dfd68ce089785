"""The image's contract: what `builder verify` expects, computed from the config.

The values come from the same functions that rendered the image and the seed
(builder/render.py, builder/roles.py, builder/seed.py's ClusterFacts), never
from literals: change a role's file and both the image and its check change.
Two layers: the image right after the build, and a node after first boot.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from builder.config.load import LoadedConfig
from builder.config.model import MASTER_ROLE, SERVICE_PORTS, SLAVE_ROLE, ManagedFile, Node
from builder.config.roles import RoleSet, compose
from builder.firstboot.seed import ClusterFacts, fqdn, node_files
from builder.render.kickstart import BUILD_KEY_COMMENT
from builder.render.provision import role_files, yum_repo_file

ROLES_FILE = "/etc/builder/roles"
YUM_REPO_FILE = "/etc/yum.repos.d/builder.repo"


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
    ports: tuple[str, ...]  # firewalld's form: 5050/tcp, 31000-32000/tcp
    units: tuple[UnitState, ...]
    selinux: str
    users: tuple[str, ...]  # whose password must be locked or a crypt hash
    build_key_comment: str = BUILD_KEY_COMMENT


@dataclass(frozen=True)
class MasterApi:
    zk_url: str
    quorum: int
    marathon_zk: str
    agents: tuple[str, ...]  # the inventory's slaves (hostnames as agents report them)
    every_agent: bool  # all of them must be registered (--cluster), not only some


@dataclass(frozen=True)
class NodeContract:
    """True once first boot has run."""

    hostname: str
    roles: tuple[str, ...]
    files: tuple[tuple[str, str], ...]  # path, exact content
    services: tuple[str, ...]  # enabled and running
    idle_units: tuple[str, ...]  # the other stack units: never started
    listening: tuple[tuple[str, int], ...]  # service, port
    master: MasterApi | None
    slave_zk_url: str | None


def image_contract(loaded: LoadedConfig, roles: RoleSet) -> ImageContract:
    os_config = loaded.config.os
    services = set(roles.services)
    packages = tuple(
        RolePackage(name, package)
        for name in roles.names
        for package in loaded.config.roles[name].packages
    )
    files = (
        *role_files(roles),
        ManagedFile(path=ROLES_FILE, content=roles.label + "\n"),
        ManagedFile(path=YUM_REPO_FILE, content=yum_repo_file(roles, loaded)),
    )
    units = tuple(
        UnitState(unit, "disabled" if unit in services else "masked")
        for unit in dict.fromkeys((*os_config.stack_units, *roles.services))
    )
    return ImageContract(
        label=roles.label,
        packages=packages,
        files=tuple(sorted(files, key=lambda spec: spec.path)),
        ports=tuple(port.firewalld for port in roles.ports),
        units=units,
        selinux=os_config.selinux,
        users=("root", os_config.admin.name),
    )


def node_roles(loaded: LoadedConfig, node: Node) -> RoleSet:
    return compose(loaded, tuple(name for name in loaded.config.roles if name in node.roles))


def node_contract(
    loaded: LoadedConfig, node: Node, facts: ClusterFacts, every_agent: bool = False
) -> NodeContract:
    cluster = loaded.config.cluster
    services = facts.services[tuple(sorted(node.roles))]
    master = None
    if MASTER_ROLE in node.roles:
        master = MasterApi(
            zk_url=facts.zk_url,
            quorum=facts.quorum,
            marathon_zk=f"zk://{facts.zk_hosts}/marathon",
            agents=tuple(fqdn(cluster, n) for n in cluster.nodes if SLAVE_ROLE in n.roles),
            every_agent=every_agent,
        )
    return NodeContract(
        hostname=node.hostname,
        roles=tuple(node.roles),
        files=tuple(node_files(facts, node).items()),
        services=services,
        idle_units=tuple(u for u in loaded.config.os.stack_units if u not in services),
        listening=tuple((s, SERVICE_PORTS[s]) for s in services if s in SERVICE_PORTS),
        master=master,
        slave_zk_url=facts.zk_url if SLAVE_ROLE in node.roles else None,
    )
