"""First boot: the cluster inventory as cloud-init config for every node.

Images are generic per role; a node becomes test166 or test167 when it first
boots. Its seed is self-contained cloud-config that CentOS 7's own cloud-init
(18.5) understands: `hostname`/`fqdn`, `write_files` for every node-specific
file (the init stage, before anything Mesos starts), then `runcmd` (the final
stage) enabling and starting the role's units in order. The image bakes every
Mesos-stack unit disabled, so nothing ever runs on package defaults; runcmd
and write_files run once per instance, so a reboot neither redoes nor undoes
anything. The cluster's values are selected from its ClusterFacts
(builder/config/cluster.py), never computed here; the YAML is dumped from
data, never templated.
"""

from __future__ import annotations

import base64
import functools
import gzip
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from builder.config.cluster import (
    DEFAULT_ZONE,
    DEFAULT_ZONE_XML,
    FIREWALLD_ZONES,
    ClusterFacts,
    FirewallZone,
)
from builder.config.load import LoadedConfig
from builder.config.model import MASTER_ROLE, SLAVE_ROLE, Node
from builder.config.roles import node_roles
from builder.config.secrets import SECRET_MODE, Secrets, load_secrets
from builder.errors import ConfigError, Problem, UserError
from builder.firstboot.seed_iso import write_iso
from builder.firstboot.yamldump import dump
from builder.fsutil import replace_tree, write_file

SEED_LABEL = "cidata"
# EC2 takes at most 16 KiB of user-data; cloud-init unpacks gzip user-data.
EC2_USER_DATA_LIMIT = 16384
# A file this large (a big cluster's /etc/hosts) travels gzip+base64 encoded.
COMPRESS_FILES_OVER = 64 * 1024
USER_DATA = "user-data"
META_DATA = "meta-data"
NETWORK_CONFIG = "network-config"


class SeedFormat(StrEnum):
    ISO = "iso"
    DIR = "dir"
    EC2 = "ec2"


@dataclass(frozen=True)
class NodeSeed:
    hostname: str
    files: Mapping[str, str]  # user-data, meta-data and, for a static address, network-config

    @property
    def user_data(self) -> str:
        return self.files[USER_DATA]


def node_files(facts: ClusterFacts, node: Node) -> dict[str, str]:
    """Every node-specific file, path -> content, in the order they are written."""
    cluster = facts.cluster
    name = facts.fqdn(node)
    files = {"/etc/hosts": facts.hosts_for(node), "/etc/mesos/zk": facts.zk_url + "\n"}
    if MASTER_ROLE in node.roles:
        files |= {
            "/etc/mesos-master/quorum": f"{facts.quorum}\n",
            "/etc/mesos-master/ip": f"{node.ip}\n",
            "/etc/mesos-master/hostname": f"{name}\n",
            "/etc/mesos-master/cluster": f"{cluster.name}\n",
            "/var/lib/zookeeper/myid": f"{facts.master_numbers[node.hostname]}\n",
            "/etc/zookeeper/conf/zoo.cfg": facts.zoo_cfg,
            "/etc/default/marathon": (
                f"MARATHON_MASTER={facts.zk_url}\n"
                f"MARATHON_ZK={facts.marathon_zk}\n"
                f"MARATHON_HOSTNAME={name}\n"
            ),
            "/etc/chronos/conf/master": f"{facts.zk_url}\n",
            "/etc/chronos/conf/zk_hosts": f"{facts.zk_hosts}\n",
            "/etc/chronos/conf/hostname": f"{name}\n",
        }
    if SLAVE_ROLE in node.roles:
        files |= {
            "/etc/mesos-slave/ip": f"{node.ip}\n",
            "/etc/mesos-slave/hostname": f"{name}\n",
        }
        for key, value in sorted(node.attributes.items()):
            files[f"/etc/mesos-slave/attributes/{key}"] = f"{value}\n"
        for key, value in sorted(node.resources.items()):
            files[f"/etc/mesos-slave/resources/{key}"] = f"{value}\n"
    return files | firewall_files(facts.firewall(node))


DEFAULT_ZONE_FILE = f"{FIREWALLD_ZONES}/{DEFAULT_ZONE}.xml"
# firewalld reads the zone files written in cloud-init's init stage when first boot
# reloads it, before any unit of the stack starts.
RELOAD_FIREWALL = ["firewall-cmd", "--reload"]


def firewall_files(zones: Iterable[FirewallZone]) -> dict[str, str]:
    """The node's firewall as firewalld's permanent config: the default zone emptied of
    all but what must stay, and one zone per distinct set of ports with its sources."""
    return {DEFAULT_ZONE_FILE: DEFAULT_ZONE_XML} | {zone.path: zone.xml for zone in zones}


def start_commands(services: Iterable[str]) -> list[list[str]]:
    """Enable every unit, then start them one by one, in order."""
    units = [f"{service}.service" for service in services]
    return [["systemctl", "enable", *units]] + [["systemctl", "start", unit] for unit in units]


def user_data(facts: ClusterFacts, node: Node, secrets: Secrets | None = None) -> dict[str, Any]:
    cluster = facts.cluster
    document: dict[str, Any] = {
        "hostname": node.hostname,
        "fqdn": facts.fqdn(node),
        "preserve_hostname": False,
        "manage_etc_hosts": False,
        "write_files": [
            file_entry(path, content) for path, content in node_files(facts, node).items()
        ],
        "runcmd": [RELOAD_FIREWALL, *start_commands(facts.units(node))],
    }
    if secrets is not None:
        document["write_files"] += [
            file_entry(path, content, SECRET_PERMISSIONS)
            for path, content in secrets.node_files().items()
        ]
    keys = [*cluster.ssh_authorized_keys, *node.ssh_authorized_keys]
    if keys:
        document["ssh_authorized_keys"] = list(dict.fromkeys(keys))
    return document


def file_entry(path: str, content: str, permissions: str = "0644") -> dict[str, str]:
    """One write_files item, root's."""
    return {"path": path, **_encoded(content), "owner": "root:root", "permissions": permissions}


# A secret reaches a node as a file only root reads; a seed on the host is its owner's only.
SECRET_PERMISSIONS = f"{SECRET_MODE:04o}"


@functools.lru_cache(maxsize=16)
def _compressed(content: str) -> str:
    return base64.b64encode(gzip.compress(content.encode(), mtime=0)).decode()


def _encoded(content: str) -> dict[str, str]:
    """write_files' content, gzip+base64 encoded when large (computed once per content)."""
    if len(content) <= COMPRESS_FILES_OVER:
        return {"content": content}
    return {"encoding": "gz+b64", "content": _compressed(content)}


def ec2_user_data(seed: NodeSeed) -> bytes:
    """The user-data as EC2 takes it: gzip-compressed when over EC2's 16 KiB."""
    data = seed.user_data.encode()
    if len(data) > EC2_USER_DATA_LIMIT:
        data = gzip.compress(data, mtime=0)
    if len(data) > EC2_USER_DATA_LIMIT:
        raise UserError(
            f"{seed.hostname}: user-data is {len(data)} bytes even gzipped; "
            f"EC2 takes at most {EC2_USER_DATA_LIMIT}"
        )
    return data


def network_config(node: Node) -> dict[str, Any] | None:
    """Network config version 1 (what cloud-init 18.5 renders to ifcfg files)."""
    static = node.network
    if static is None:
        return None
    interface: dict[str, Any] = {"type": "physical", "name": static.interface}
    if static.mac:
        interface["mac_address"] = static.mac
    subnet: dict[str, Any] = {"type": "static", "address": f"{node.ip}/{static.prefix}"}
    if static.gateway:
        subnet["gateway"] = static.gateway
    if static.dns:
        subnet["dns_nameservers"] = list(static.dns)
    if static.search:
        subnet["dns_search"] = list(static.search)
    interface["subnets"] = [subnet]
    return {"version": 1, "config": [interface]}


def node_seed(
    loaded: LoadedConfig,
    node: Node,
    facts: ClusterFacts | None = None,
    secrets: Secrets | None = None,
) -> NodeSeed:
    facts = facts or ClusterFacts.of(loaded)
    body = "#cloud-config\n" + dump(user_data(facts, node, secrets))
    network = network_config(node)
    files = {USER_DATA: body}
    network_text = dump(network) if network else ""
    digest = hashlib.sha256((body + "\0" + network_text).encode()).hexdigest()[:12]
    files[META_DATA] = dump(
        {"instance-id": f"{node.hostname}-{digest}", "local-hostname": node.hostname}
    )
    if network_text:
        files[NETWORK_CONFIG] = network_text
    return NodeSeed(node.hostname, files)


def select_nodes(loaded: LoadedConfig, names: Iterable[str], every: bool) -> list[Node]:
    nodes = list(loaded.config.cluster.nodes)
    wanted = list(dict.fromkeys(name.lower() for name in names))
    if every == bool(wanted):
        raise UserError("name the nodes to seed, or --all, not both and not neither")
    if every:
        return nodes
    by_name = {node.hostname: node for node in nodes}
    unknown = [name for name in wanted if name not in by_name]
    if unknown:
        known = ", ".join(by_name)
        raise ConfigError(
            [
                Problem("NODE", None, "", f"no node {name!r} in the cluster ({known})")
                for name in unknown
            ]
        )
    return [by_name[name] for name in wanted]


def write_seeds(
    loaded: LoadedConfig, nodes: Iterable[Node], out: Path, fmt: SeedFormat
) -> list[Path]:
    """Every seed is made in memory first; then each file is written atomically."""
    facts = ClusterFacts.of(loaded)
    nodes = list(nodes)
    for node in nodes:
        node_roles(loaded, node)  # roles that disagree make no image to boot: no seed either
    secrets = load_secrets(loaded.directory)
    seeds = [node_seed(loaded, node, facts, secrets) for node in nodes]
    ec2 = [ec2_user_data(seed) for seed in seeds] if fmt is SeedFormat.EC2 else []
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for index, seed in enumerate(seeds):
        if fmt is SeedFormat.ISO:
            path = out / f"{seed.hostname}-cidata.iso"
            write_iso(
                path,
                SEED_LABEL,
                {name: text.encode() for name, text in seed.files.items()},
                mode=SECRET_MODE,
            )
        elif fmt is SeedFormat.DIR:
            path = out / seed.hostname
            replace_tree(path, seed.files, dict.fromkeys(seed.files, SECRET_MODE))
        else:
            path = out / f"{seed.hostname}.user-data"
            write_file(path, ec2[index], mode=SECRET_MODE)
        written.append(path)
    return written
