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
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from builder.config.certificates import EXECUTOR_KEPT_AS, executor_ca, node_certificate
from builder.config.cluster import (
    AGENT_CA_FILE,
    AGENT_CREDENTIAL_FILE,
    AGENT_HTTP_CREDENTIALS_FILE,
    AGENT_PRINCIPAL,
    CHRONOS_DEFAULTS,
    CHRONOS_PRINCIPAL,
    CHRONOS_SECRET_FILE,
    DEFAULT_ZONE,
    DEFAULT_ZONE_XML,
    EXECUTOR_CERT_FILE,
    EXECUTOR_KEY_FILE,
    EXECUTOR_LIBPROCESS_SSL,
    EXECUTOR_PATH,
    FIREWALLD_ZONES,
    HTTP_CREDENTIALS_VARIABLE,
    HTTP_PRINCIPAL,
    HTTPS_PORTS,
    KEYSTORE_PASS_VARIABLE,
    KEYSTORE_PATH_VARIABLE,
    KEYSTORE_SECRET,
    MARATHON_DEFAULTS,
    MARATHON_PRINCIPAL,
    MARATHON_SECRET_FILE,
    MASTER_CREDENTIALS,
    MASTER_CREDENTIALS_FILE,
    MESOS_DEFAULTS,
    MESOS_PACKAGE_DEFAULTS,
    MESOS_ZK_URL_FILE,
    NODE_CA_FILE,
    NODE_CERT_FILE,
    NODE_KEY_FILE,
    NODE_KEYSTORE_FILE,
    NODE_LIBPROCESS_SSL,
    PLAIN_HTTP_ADDRESSES,
    SHARED_KEY_FILES,
    SHARED_TLS_MODE,
    ZK_MARATHON_PRINCIPAL,
    ZK_MESOS_PRINCIPAL,
    ClusterFacts,
    FirewallZone,
    Principal,
    mesos_libprocess_ssl,
    node_secret_names,
    zk_url_has_password,
)
from builder.config.load import LoadedConfig
from builder.config.model import MASTER_ROLE, SLAVE_ROLE, Node
from builder.config.roles import node_roles
from builder.config.secrets import SECRET_MODE, SECRETS_FILE, Secrets, load_secrets
from builder.config.tls import ClusterCA, NodeCertificate
from builder.errors import ConfigError, Problem, UserError
from builder.firstboot import ssm_secrets
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
    """Every node-specific file that holds no secret, path -> content, in the order they are
    written (`builder verify` checks them by content). A secured cluster's files that embed
    a secret are `secret_files`."""
    cluster = facts.cluster
    name = facts.fqdn(node)
    files = {"/etc/hosts": facts.hosts_for(node)}
    if facts.secured and zk_url_has_password(node):
        files["/etc/mesos/zk"] = f"file://{MESOS_ZK_URL_FILE}\n"
    else:
        files["/etc/mesos/zk"] = facts.zk_url + "\n"
    if facts.secured:
        ssl = mesos_libprocess_ssl(node)
        files[MESOS_DEFAULTS] = MESOS_PACKAGE_DEFAULTS + variables(ssl, "export ")
    if MASTER_ROLE in node.roles:
        files |= {
            "/etc/mesos-master/quorum": f"{facts.quorum}\n",
            "/etc/mesos-master/ip": f"{node.ip}\n",
            "/etc/mesos-master/hostname": f"{name}\n",
            "/etc/mesos-master/cluster": f"{cluster.name}\n",
            "/var/lib/zookeeper/myid": f"{facts.master_numbers[node.hostname]}\n",
            "/etc/zookeeper/conf/zoo.cfg": facts.zoo_cfg,
        }
        if not facts.secured:
            files[MARATHON_DEFAULTS] = marathon_defaults(facts, node, facts.marathon_zk)
        files |= {
            "/etc/chronos/conf/master": f"{facts.zk_url}\n",
            "/etc/chronos/conf/zk_hosts": f"{facts.zk_hosts}\n",
            "/etc/chronos/conf/hostname": f"{name}\n",
        }
        if facts.secured:
            # Mesos' init wrapper: FILE -> --FILE=CONTENT, ?FILE -> --FILE
            files |= {
                **flags_on("/etc/mesos-master", MASTER_AUTH_FLAGS),
                "/etc/mesos-master/credentials": f"{MASTER_CREDENTIALS_FILE}\n",
                "/etc/chronos/conf/mesos_authentication_principal": (f"{CHRONOS_PRINCIPAL.name}\n"),
                "/etc/chronos/conf/mesos_authentication_secret_file": f"{CHRONOS_SECRET_FILE}\n",
                # HTTPS with the node's keystore (its path and password: /etc/default/chronos);
                # the HTTP Chronos cannot turn off answers on loopback only
                "/etc/chronos/conf/https_port": f"{HTTPS_PORTS['chronos']}\n",
                "/etc/chronos/conf/http_address": f"{PLAIN_HTTP_ADDRESSES['chronos'][0]}\n",
            }
    if SLAVE_ROLE in node.roles:
        files |= {
            "/etc/mesos-slave/ip": f"{node.ip}\n",
            "/etc/mesos-slave/hostname": f"{name}\n",
        }
        if facts.secured:
            executors = {"PATH": EXECUTOR_PATH, **EXECUTOR_LIBPROCESS_SSL}
            files |= {
                **flags_on("/etc/mesos-slave", AGENT_AUTH_FLAGS),
                "/etc/mesos-slave/credential": f"{AGENT_CREDENTIAL_FILE}\n",
                "/etc/mesos-slave/http_credentials": f"{AGENT_HTTP_CREDENTIALS_FILE}\n",
                # the executors' whole environment but MESOS_* (they inherit nothing)
                "/etc/mesos-slave/executor_environment_variables": json.dumps(executors) + "\n",
            }
        for key, value in sorted(node.attributes.items()):
            files[f"/etc/mesos-slave/attributes/{key}"] = f"{value}\n"
        for key, value in sorted(node.resources.items()):
            files[f"/etc/mesos-slave/resources/{key}"] = f"{value}\n"
    return files | firewall_files(facts.firewall(node))


# Boolean flags of a secured cluster (Mesos 1.x names; see DESIGN, "Authentication").
MASTER_AUTH_FLAGS = (
    "authenticate_agents",
    "authenticate_frameworks",
    "authenticate_http_readonly",
    "authenticate_http_readwrite",
)
AGENT_AUTH_FLAGS = ("authenticate_http_readonly", "authenticate_http_readwrite")


def flags_on(directory: str, names: Iterable[str]) -> dict[str, str]:
    """Boolean flags as the init wrapper takes them: an empty file `?NAME`."""
    return {f"{directory}/?{name}": "" for name in names}


def variables(values: Mapping[str, str], prefix: str = "") -> str:
    """NAME=VALUE lines (values that need no quoting in a shell or a systemd
    EnvironmentFile: paths, words, cipher lists)."""
    return "".join(f"{prefix}{name}={value}\n" for name, value in values.items())


def marathon_defaults(facts: ClusterFacts, node: Node, zk: str, extra: str = "") -> str:
    """/etc/default/marathon: MARATHON_X=Y becomes --x=Y (an empty value: a boolean flag)."""
    return (
        f"MARATHON_MASTER={facts.zk_url}\n"
        f"MARATHON_ZK={zk}\n"
        f"MARATHON_HOSTNAME={facts.fqdn(node)}\n" + extra
    )


def _password(secrets: Secrets, principal: Principal) -> str:
    return secrets.values[principal.secret]


def _credentials(secrets: Secrets, principals: Iterable[Principal]) -> str:
    entries = [{"principal": p.name, "secret": _password(secrets, p)} for p in principals]
    return json.dumps({"credentials": entries}, indent=1) + "\n"


def node_tls(
    facts: ClusterFacts, node: Node, secrets: Secrets, *, issue: bool = True
) -> NodeCertificate | None:
    """A secured node's certificate for its FQDN, host name and inventory address (a
    master's with its keystore): the one kept for it, or a new one (`issue`; verify never
    issues)."""
    if not facts.serves_tls(node):
        return None
    return node_certificate(
        secrets,
        node.hostname,
        names=[facts.fqdn(node), node.hostname],
        addresses=[node.ip],
        keystore_password=(secrets.values[KEYSTORE_SECRET] if facts.has_keystore(node) else None),
        issue=issue,
    )


def executor_tls(
    facts: ClusterFacts, node: Node, issuer: ClusterCA, secrets: Secrets, *, issue: bool = True
) -> NodeCertificate | None:
    """A secured agent's certificate for its executors (libprocess processes the agent
    reaches at the node's address, as any user a task runs as): the node's names, a key
    of its own, issued by `issuer`, the node's executors' CA, which only its agent trusts."""
    return node_certificate(
        secrets,
        EXECUTOR_KEPT_AS.format(hostname=node.hostname),
        names=[facts.fqdn(node), node.hostname],
        addresses=[node.ip],
        keystore_password=None,
        issue=issue,
        issuer=issuer,
    )


def certificate_files(facts: ClusterFacts, node: Node, secrets: Secrets) -> dict[str, str]:
    """The public TLS file every secured node gets: the cluster CA's certificate."""
    if not facts.serves_tls(node) or secrets.ca is None:
        return {}
    return {NODE_CA_FILE: secrets.ca.cert_pem}


def shared_tls_files(
    facts: ClusterFacts, node: Node, secrets: Secrets, *, issue: bool = True
) -> dict[str, str]:
    """A secured node's TLS files that every local user reads (0644; `verify` checks them
    by digest, as secret files): its certificate and, on an agent, its executors'
    certificate and key and what its agent trusts (the cluster CA and its executors' CA)."""
    files: dict[str, str] = {}
    own = node_tls(facts, node, secrets, issue=issue)
    if own is not None:
        files[NODE_CERT_FILE] = own.cert_pem
    if not facts.serves_tls(node) or SLAVE_ROLE not in node.roles or secrets.ca is None:
        return files
    issuer = executor_ca(secrets, node.hostname, issue=issue)
    executor = executor_tls(facts, node, issuer, secrets, issue=issue) if issuer else None
    if executor is not None and issuer is not None:
        files |= {
            EXECUTOR_CERT_FILE: executor.cert_pem,
            EXECUTOR_KEY_FILE: executor.key_pem,
            AGENT_CA_FILE: secrets.ca.cert_pem + issuer.cert_pem,
        }
    return files


def keystore_variables(secrets: Secrets) -> str:
    """Where Marathon and Chronos find the node's keystore and its password (their HTTP
    library reads both from the environment; a flag would put the password in argv)."""
    return (
        f"{KEYSTORE_PATH_VARIABLE}={NODE_KEYSTORE_FILE}\n"
        f"{KEYSTORE_PASS_VARIABLE}={secrets.values[KEYSTORE_SECRET]}\n"
    )


def ssm_shared_files(
    facts: ClusterFacts, node: Node, secrets: Secrets, *, issue: bool = True
) -> dict[str, str]:
    """The shared TLS files that are private keys (SHARED_KEY_FILES): with ssm_secrets they
    reach an EC2 node from SSM, not in its user-data."""
    shared = shared_tls_files(facts, node, secrets, issue=issue)
    return {path: content for path, content in shared.items() if path in SHARED_KEY_FILES}


def secret_files(
    facts: ClusterFacts, node: Node, secrets: Secrets, *, issue: bool = True
) -> dict[str, str | bytes]:
    """The node's files that embed a secret (root's, 0600; `verify` checks them by owner,
    mode and digest, never by content): the secrets themselves and, on a secured cluster,
    the credential files, the flag files holding a password and the node's keystore."""
    files: dict[str, str | bytes] = dict(secrets.node_files(node_secret_names(node)))
    if not facts.secured:
        return files
    http_user = f"{HTTP_PRINCIPAL.name}:{_password(secrets, HTTP_PRINCIPAL)}"
    http_variable = f"{HTTP_CREDENTIALS_VARIABLE}={http_user}\n"
    certificate = node_tls(facts, node, secrets, issue=issue)
    if certificate is not None:
        files[NODE_KEY_FILE] = certificate.key_pem
        if certificate.keystore is not None:
            files[NODE_KEYSTORE_FILE] = certificate.keystore
    if zk_url_has_password(node):
        # no newline: Mesos takes a file:// flag value's every byte (its /master/flags shows it)
        files[MESOS_ZK_URL_FILE] = facts.zk_url_as(
            ZK_MESOS_PRINCIPAL, _password(secrets, ZK_MESOS_PRINCIPAL)
        )
        marathon_zk = facts.marathon_zk_as(
            ZK_MARATHON_PRINCIPAL, _password(secrets, ZK_MARATHON_PRINCIPAL)
        )
        files |= {
            MASTER_CREDENTIALS_FILE: _credentials(secrets, MASTER_CREDENTIALS),
            # framework secrets without a newline: Marathon and Chronos read every byte
            MARATHON_SECRET_FILE: _password(secrets, MARATHON_PRINCIPAL),
            CHRONOS_SECRET_FILE: _password(secrets, CHRONOS_PRINCIPAL),
            MARATHON_DEFAULTS: marathon_defaults(
                facts,
                node,
                marathon_zk,
                "MARATHON_MESOS_AUTHENTICATION=\n"
                f"MARATHON_MESOS_AUTHENTICATION_PRINCIPAL={MARATHON_PRINCIPAL.name}\n"
                f"MARATHON_MESOS_AUTHENTICATION_SECRET_FILE={MARATHON_SECRET_FILE}\n"
                # HTTPS only (Marathon allows --disable_http once HTTPS is configured)
                f"MARATHON_HTTPS_PORT={HTTPS_PORTS['marathon']}\n"
                "MARATHON_DISABLE_HTTP=\n"
                + http_variable
                + keystore_variables(secrets)
                # its scheduler driver (libprocess) to the masters, over TLS
                + variables(NODE_LIBPROCESS_SSL),
            ),
            CHRONOS_DEFAULTS: http_variable
            + keystore_variables(secrets)
            + variables(NODE_LIBPROCESS_SSL),
        }
    if SLAVE_ROLE in node.roles:
        agent = {"principal": AGENT_PRINCIPAL.name, "secret": _password(secrets, AGENT_PRINCIPAL)}
        files |= {
            AGENT_CREDENTIAL_FILE: json.dumps(agent, indent=1) + "\n",
            AGENT_HTTP_CREDENTIALS_FILE: _credentials(secrets, [HTTP_PRINCIPAL]),
        }
    return files


def cluster_secrets(loaded: LoadedConfig) -> Secrets | None:
    """The secrets a seed needs: a secured cluster without its secrets file is bad input."""
    secrets = load_secrets(loaded.directory)
    if secrets is None and loaded.config.cluster.secured:
        raise UserError(
            f"{loaded.directory / SECRETS_FILE}: no secrets, and cluster.yaml's security is "
            "authenticated (set `security: none` only for a lab)",
            hint=f"builder --config {loaded.directory} secrets init",
        )
    return secrets


SECURITY_NONE_WARNING = (
    "security: none: no authentication anywhere (Mesos, Marathon, Chronos, ZooKeeper); "
    "anyone who reaches the cluster's ports can run anything on it"
)


DEFAULT_ZONE_FILE = f"{FIREWALLD_ZONES}/{DEFAULT_ZONE}.xml"
# firewalld reads the zone files written in cloud-init's init stage when first boot
# reloads it, before any unit of the stack starts. firewall-cmd gives up when firewalld
# does not answer its D-Bus call in time ("FirewallD is not running", as on a host short of
# CPU), and runcmd goes on regardless: the reload is tried again, six times 10 s apart.
# Until it succeeds the image's firewall stands (SSH only): a failed reload fails closed.
RELOAD_FIREWALL = [
    "sh",
    "-c",
    "for try in 1 2 3 4 5 6; do firewall-cmd --reload && exit 0; sleep 10; done; exit 1",
]


def firewall_files(zones: Iterable[FirewallZone]) -> dict[str, str]:
    """The node's firewall as firewalld's permanent config: the default zone emptied of
    all but what must stay, and one zone per distinct set of ports with its sources."""
    return {DEFAULT_ZONE_FILE: DEFAULT_ZONE_XML} | {zone.path: zone.xml for zone in zones}


def start_commands(services: Iterable[str]) -> list[list[str]]:
    """Enable every unit, then start them one by one, in order."""
    units = [f"{service}.service" for service in services]
    return [["systemctl", "enable", *units]] + [["systemctl", "start", unit] for unit in units]


def user_data(
    facts: ClusterFacts, node: Node, secrets: Secrets | None = None, *, from_ssm: bool = False
) -> dict[str, Any]:
    """The node's cloud-config. `from_ssm`: the secret files are not in it; the node
    fetches them from SSM Parameter Store before any service starts (ssm_secrets.py)."""
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
            file_entry(path, content)
            for path, content in certificate_files(facts, node, secrets).items()
        ] + [
            file_entry(path, content, f"{SHARED_TLS_MODE:04o}")
            for path, content in shared_tls_files(facts, node, secrets).items()
            if not (from_ssm and path in SHARED_KEY_FILES)
        ]
        if from_ssm:
            document["write_files"] += [
                file_entry(
                    ssm_secrets.MANIFEST,
                    ssm_secrets.manifest(facts, node, secrets),
                    SECRET_PERMISSIONS,
                ),
                file_entry(ssm_secrets.FETCHER, ssm_secrets.fetcher_source(), "0755"),
            ]
            document["runcmd"].insert(0, ssm_secrets.FETCH_OR_STOP)
        else:
            document["write_files"] += [
                file_entry(path, content, SECRET_PERMISSIONS)
                for path, content in secret_files(facts, node, secrets).items()
            ]
    elif facts.secured:
        raise UserError(f"{node.hostname}: a secured cluster's seed needs its secrets")
    keys = [*cluster.ssh_authorized_keys, *node.ssh_authorized_keys]
    if keys:
        document["ssh_authorized_keys"] = list(dict.fromkeys(keys))
    return document


def file_entry(path: str, content: str | bytes, permissions: str = "0644") -> dict[str, str]:
    """One write_files item, root's (bytes, such as a keystore, base64-encoded)."""
    encoded = (
        {"encoding": "b64", "content": base64.b64encode(content).decode()}
        if isinstance(content, bytes)
        else _encoded(content)
    )
    return {"path": path, **encoded, "owner": "root:root", "permissions": permissions}


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
    *,
    from_ssm: bool = False,
) -> NodeSeed:
    facts = facts or ClusterFacts.of(loaded)
    body = "#cloud-config\n" + dump(user_data(facts, node, secrets, from_ssm=from_ssm))
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
    secrets = cluster_secrets(loaded)
    # EC2 user-data is readable by any process on the instance: with ssm_secrets it carries
    # none, and the node fetches them at first boot.
    from_ssm = fmt is SeedFormat.EC2 and loaded.config.cluster.ssm_secrets is not None
    seeds = [node_seed(loaded, node, facts, secrets, from_ssm=from_ssm) for node in nodes]
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
