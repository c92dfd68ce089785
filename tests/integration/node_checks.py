"""What first boot must leave on a node, and the faults `builder verify` must name.

The default cluster's test (test_cluster_up.py) runs these on test166 and test167 as
`builder up` booted them: over SSH what only a running system shows (hostname, unit start
order against the moment /etc/mesos/zk was written, the stand-in services answering with
the configured ZooKeeper URL), the disk of a powered-off node read back with debugfs, and
faults put on a running node that fail exactly the checks they should.
"""

from __future__ import annotations

import ast
import json
import shlex
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from builder.cluster.health import http_auth
from builder.config.cluster import (
    AGENT_CREDENTIAL_FILE,
    EXECUTOR_KEY_FILE,
    MARATHON_DEFAULTS,
    MESOS_ZK_URL_FILE,
    NODE_CA_FILE,
    NODE_CERT_FILE,
    NODE_KEY_FILE,
    PLAIN_HTTP_ADDRESSES,
    SERVICE_PORTS,
    ZK_MARATHON_PRINCIPAL,
    ZK_MESOS_PRINCIPAL,
    ClusterFacts,
    zk_url_has_password,
)
from builder.config.load import LoadedConfig
from builder.config.model import MASTER_ROLE, SLAVE_ROLE, Node
from builder.config.secrets import Secrets
from builder.firstboot.seed import node_files, node_seed, secret_files, shared_tls_files
from builder.verify.contract import SecretFile
from tests.integration.standin import DiskReader

STACK = ("zookeeper", "mesos-master", "mesos-slave", "marathon", "chronos", "docker")
Ssh = Callable[[str], str]  # a command run on the node over SSH -> its stdout


@dataclass(frozen=True)
class Verified:
    """`builder verify` run as a user runs it: exit code, output, and each check from JUnit."""

    returncode: int
    output: str
    checks: dict[str, tuple[str, str, bool]]  # what -> expected, found, passed

    @property
    def failed(self) -> dict[str, tuple[str, str]]:
        return {what: (exp, found) for what, (exp, found, ok) in self.checks.items() if not ok}


def junit_checks(junit: Path) -> dict[str, tuple[str, str, bool]]:
    """Every check of a verify run's JUnit report: what -> expected, found, passed."""
    checks: dict[str, tuple[str, str, bool]] = {}
    if junit.exists():
        for case in ET.parse(junit).getroot().iter("testcase"):  # noqa: S314 - our own report
            # A spec may make several checks: each is a (check, expected, found) triple.
            values = [p.get("value", "") for p in case.iter("property")]
            names = [p.get("name", "") for p in case.iter("property")]
            passed = case.find("failure") is None and case.find("error") is None
            # A failing check ends its spec: only the last one can have failed.
            last = len(names) - 3
            for at in range(0, last + 1, 3):
                assert names[at : at + 3] == ["check", "expected", "found"], names
                checks[values[at]] = (values[at + 1], values[at + 2], passed or at < last)
    return checks


def _unix_time(ssh: Ssh, unit: str) -> float:
    value = ssh(f"systemctl show -P ActiveEnterTimestamp --timestamp=unix {unit}").strip()
    return float(value.lstrip("@")) if value else 0.0


def _first_started(ssh: Ssh, unit: str) -> float:
    """When systemd first started `unit` in this boot, from its journal: a daemon that
    exited and was restarted since (a ZooKeeper session lost under load, as the real ones
    exit) shows only its latest start in ActiveEnterTimestamp."""
    line = ssh(
        f"sudo journalctl -b -u {unit}.service -o short-unix --no-pager -q"
        " | grep -m1 ' systemd\\[1\\]: Started ' || true"
    ).strip()
    return float(line.split()[0]) if line else 0.0


def _get_json(ssh: Ssh, loaded: LoadedConfig, url: str) -> dict[str, object]:
    """A secured node's API, asked on the node with the cluster's HTTP credentials."""
    auth = http_auth(loaded)
    assert auth is not None
    # https: trusting the cluster CA's certificate first boot put on the node (a master's)
    https = url.startswith("https://")
    program = (
        "import ssl, sys, time, urllib.request\n"
        f"request = urllib.request.Request({url!r}, headers={{'Authorization': {auth.header!r}}})\n"
        f"context = ssl.create_default_context(cafile={NODE_CA_FILE!r}) if {https} else None\n"
        "for i in range(60):\n"
        "    try:\n"
        "        reply = urllib.request.urlopen(request, timeout=3, context=context)\n"
        "        print(reply.read().decode()); break\n"
        "    except Exception:\n"
        "        time.sleep(1)\n"
    )
    result: dict[str, object] = json.loads(ssh(f"python3 -c {shlex.quote(program)}"))
    return result


def check_running_node(
    ssh: Ssh, loaded: LoadedConfig, node: Node, secrets: Secrets, first_boot: bool = True
) -> None:
    """The node's name, its units started after its files (at first boot in their order:
    runcmd starts them one by one; at a later boot systemd starts them together), the
    others never, and the stack's own flags as its APIs report them."""
    facts = ClusterFacts.of(loaded)
    password = secrets.values[ZK_MESOS_PRINCIPAL.secret]
    assert ssh("hostname").strip() == node.hostname
    written = float(ssh("stat -c %.9Y /etc/mesos/zk").strip())
    services = facts.units(node)
    started = {unit: _unix_time(ssh, unit) for unit in STACK}
    for unit in STACK:
        if unit in services:
            assert ssh(f"systemctl is-active {unit}").strip() == "active", unit
            assert started[unit] > written, f"{unit} started before /etc/mesos/zk was written"
        else:
            assert started[unit] == 0.0, f"{unit} is not this node's and must never start"
    if first_boot:  # runcmd's order; at a later boot systemd starts them together
        for role_order in (
            ("zookeeper", "mesos-master", "marathon", "chronos"),
            ("docker", "mesos-slave"),
        ):
            times = [_first_started(ssh, unit) for unit in role_order if unit in services]
            assert 0.0 not in times, f"no start of {role_order} in the journal: {times}"
            assert times == sorted(times), f"start order {role_order}: {times}"
    if MASTER_ROLE in node.roles:
        # its own flags (/master/state answers on the leading master only)
        flags = _get_json(ssh, loaded, f"https://{node.ip}:5050/master/flags")["flags"]
        assert isinstance(flags, dict)
        assert flags["zk"] == facts.zk_url_as(ZK_MESOS_PRINCIPAL, password)
        assert flags["quorum"] == str(facts.quorum)
        assert flags["authenticate_agents"] == flags["authenticate_frameworks"] == "true"
        info = _get_json(ssh, loaded, f"https://{node.ip}:8443/v2/info")
        assert info["zookeeper_config"] == {
            "zk": facts.marathon_zk_as(
                ZK_MARATHON_PRINCIPAL, secrets.values[ZK_MARATHON_PRINCIPAL.secret]
            )
        }
    if SLAVE_ROLE in node.roles:
        slave = _get_json(ssh, loaded, f"https://{node.ip}:5051/state")["flags"]
        assert isinstance(slave, dict)
        # a master,slave's agent shares the master's zk URL; an agent alone has it plain
        assert slave["master"] == (
            facts.zk_url_as(ZK_MESOS_PRINCIPAL, password)
            if zk_url_has_password(node)
            else facts.zk_url
        )
        assert slave["containerizers"] == "docker,mesos"
        assert slave["executor_registration_timeout"] == "5mins"


def check_node_layer(verified: Verified, node: Node, fqdn: str) -> None:
    """A healthy node's node layer: every check passed, the node's own among them."""
    assert verified.checks
    assert not verified.failed
    # /etc/mesos/zk holds no password (checked by content); a master's names the root-only
    # file with its zk URL (checked by digest)
    assert "/etc/mesos/zk content" in verified.checks
    assert (f"{MESOS_ZK_URL_FILE} mode, owner, digest" in verified.checks) == (
        zk_url_has_password(node)
    )
    ip = node.ip
    # the node's TLS files: its key root's, the certificates and executors' key anyone's
    assert f"{NODE_KEY_FILE} mode, owner, digest" in verified.checks
    assert f"{NODE_CERT_FILE} mode, owner, digest" in verified.checks
    if SLAVE_ROLE in node.roles:
        # Mesos' agent over TLS (libprocess SSL), asked by name
        assert f"https://{fqdn}:5051/state without credentials" in verified.checks
        assert f"{EXECUTOR_KEY_FILE} mode, owner, digest" in verified.checks
    if MASTER_ROLE in node.roles:
        for port in (2181, 5050, 8443, 4443):
            assert any(f"listening on TCP {port}" in what for what in verified.checks)
        # Marathon and Chronos over HTTPS: by address, and by name without credentials
        assert f"https://{ip}:8443/v2/info master, zk" in verified.checks
        for url in (
            f"https://{fqdn}:5050/master/flags",
            f"https://{fqdn}:8443/v2/info",
            f"https://{fqdn}:4443/scheduler/jobs",
        ):
            assert f"{url} without credentials" in verified.checks
        assert "/mesos znode ACL" in verified.checks
        assert "/mesos leader znode ACL" in verified.checks
        # their plain HTTP: Marathon's nowhere, Chronos' on loopback only
        for service, port in (("marathon", 8080), ("chronos", 4400)):
            assert f"{service}'s plain HTTP on TCP {port} listening on" in verified.checks


def check_disk(reader: DiskReader, loaded: LoadedConfig, node: Node, secrets: Secrets) -> None:
    """A powered-off node's disk: every first-boot file as the seed said, the node's units
    enabled and the others' masked."""
    facts = ClusterFacts.of(loaded)
    for path, content in node_files(facts, node).items():
        assert reader.read(path) == content, path
    for path, held in secret_files(facts, node, secrets).items():
        if isinstance(held, bytes):  # the keystore
            with tempfile.TemporaryDirectory() as scratch:
                assert reader.dump(path, Path(scratch) / "file").read_bytes() == held, path
        else:
            assert reader.read(path) == held, path
    assert reader.read("/etc/hostname").strip() == node.hostname
    services = facts.units(node)
    wants = "/etc/systemd/system/multi-user.target.wants"
    for unit in STACK:
        enabled = reader.link(f"{wants}/{unit}.service") != ""
        assert enabled == (unit in services), f"{unit} enabled={enabled}"
        # The image carries exactly this node's roles: the others' units are masked.
        masked = reader.link(f"/etc/systemd/system/{unit}.service") == "/dev/null"
        assert masked == (unit not in services), unit


def sudo_write(ssh: Ssh, path: str, content: str) -> None:
    ssh(f"printf %s {shlex.quote(content)} | sudo tee {shlex.quote(path)} >/dev/null")


def set_mesos_acls(ssh: Ssh, node: Node, secrets: Secrets, acl: str) -> None:
    """Set the ACL of the masters' zk path and of the leading master's znode as Mesos'
    digest user (kazoo, on the node)."""
    password = secrets.values[ZK_MESOS_PRINCIPAL.secret]
    program = (
        "from kazoo.client import KazooClient\n"
        "from kazoo.security import CREATOR_ALL_ACL, OPEN_ACL_UNSAFE, READ_ACL_UNSAFE\n"
        f"zk = KazooClient(hosts='{node.ip}:2181', auth_data=[('digest', 'mesos:{password}')])\n"
        "zk.start(timeout=60)\n"
        "leader = sorted(c for c in zk.get_children('/mesos') if c.startswith('json.info_'))[0]\n"
        f"zk.set_acls('/mesos/' + leader, {acl})\n"
        f"zk.set_acls('/mesos', {acl})\n"
        "zk.stop()\n"
    )
    ssh(f"python3 -c {shlex.quote(program)}")


OPEN_FLAG = "/etc/mesos-slave/?authenticate_http_readonly"


CHRONOS_HTTP_ADDRESS_FILE = "/etc/chronos/conf/http_address"
CHRONOS_HTTP_PORT = SERVICE_PORTS["chronos"]
EVERY_ADDRESS = "0.0.0.0"  # noqa: S104 (the fault: Chronos' plain HTTP open to all)


def restart_chronos_listening_on(ssh: Ssh, address: str) -> None:
    """Restart Chronos and wait until its plain HTTP listens on `address` (a condition,
    not a time: verify reads the listening sockets once)."""
    bound = shlex.quote(f"{address}:{CHRONOS_HTTP_PORT}")
    ssh(
        "sudo systemctl restart chronos && for i in $(seq 120); do "
        f"ss -Hltn | grep -qF {bound} && exit 0; sleep 1; done; exit 1"
    )


def put_node_faults(ssh: Ssh, node: Node, secrets: Secrets) -> None:
    """On a running master,slave: an agent that is no node of the inventory registers
    with the master, and its API answers strangers (its flag gone); Chronos' plain HTTP
    on every address; then (the running services keep what they read) a ZooKeeper URL
    without credentials, the agent's credential readable by all, and the masters' zk path
    and the leading master's znode opened to anyone (by their creator, who may)."""
    sudo_write(ssh, "/etc/mesos-slave/hostname", "rogue\n")
    ssh(f"sudo rm {shlex.quote(OPEN_FLAG)} && sudo systemctl restart mesos-slave")
    sudo_write(ssh, CHRONOS_HTTP_ADDRESS_FILE, f"{EVERY_ADDRESS}\n")
    restart_chronos_listening_on(ssh, EVERY_ADDRESS)
    sudo_write(ssh, "/etc/mesos/zk", f"zk://{node.hostname}:2181/mesos\n")
    ssh(f"sudo chmod 644 {AGENT_CREDENTIAL_FILE}")
    # an executors' key no task user reads (every executor would stop at its start)
    ssh(f"sudo chmod 600 {EXECUTOR_KEY_FILE}")
    set_mesos_acls(ssh, node, secrets, "OPEN_ACL_UNSAFE")


def undo_node_faults(ssh: Ssh, loaded: LoadedConfig, node: Node, secrets: Secrets) -> None:
    sudo_write(ssh, "/etc/mesos/zk", node_files(ClusterFacts.of(loaded), node)["/etc/mesos/zk"])
    sudo_write(ssh, "/etc/mesos-slave/hostname", f"{node.hostname}\n")
    sudo_write(ssh, OPEN_FLAG, "")
    ssh(f"sudo chmod 600 {AGENT_CREDENTIAL_FILE} && sudo systemctl restart mesos-slave")
    ssh(f"sudo chmod 644 {EXECUTOR_KEY_FILE}")
    set_mesos_acls(ssh, node, secrets, "CREATOR_ALL_ACL + READ_ACL_UNSAFE")
    [loopback] = PLAIN_HTTP_ADDRESSES["chronos"]
    sudo_write(ssh, CHRONOS_HTTP_ADDRESS_FILE, f"{loopback}\n")
    restart_chronos_listening_on(ssh, loopback)


def check_node_faults_named(
    faulty: Verified, loaded: LoadedConfig, node: Node, secrets: Secrets, slaves: list[str]
) -> None:
    """`verify --cluster` on the node with put_node_faults' faults: each fails exactly its
    check, each with what was found, and no report shows a secret."""
    facts = ClusterFacts.of(loaded)
    plain = f"zk://{node.hostname}:2181/mesos\n"
    assert faulty.returncode == 1, faulty.output
    [agents] = [what for what in faulty.checks if "registered agents" in what]
    credential = SecretFile.of(
        AGENT_CREDENTIAL_FILE, secret_files(facts, node, secrets)[AGENT_CREDENTIAL_FILE]
    ).digest
    executor_key = SecretFile.of(
        EXECUTOR_KEY_FILE, shared_tls_files(facts, node, secrets)[EXECUTOR_KEY_FILE]
    ).digest
    assert faulty.failed == {
        "/etc/mesos/zk content": (repr(f"file://{MESOS_ZK_URL_FILE}\n"), repr(plain)),
        f"{AGENT_CREDENTIAL_FILE} mode, owner, digest": (
            repr(f"600 root:root {credential}"),
            repr(f"644 root:root {credential}"),
        ),
        f"{OPEN_FLAG} content": ("''", "None"),
        f"{EXECUTOR_KEY_FILE} mode, owner, digest": (
            repr(f"644 root:root {executor_key}"),
            repr(f"600 root:root {executor_key}"),
        ),
        f"https://{facts.fqdn(node)}:5051/state without credentials": (
            repr('401 Basic realm="mesos-agent-readonly"'),
            "'200'",
        ),
        "/etc/mesos-slave/hostname content": (repr(f"{node.hostname}\n"), "'rogue\\n'"),
        # --cluster wants every slave of the inventory registered
        agents: (repr(sorted(slaves)), "['rogue']"),
        "/mesos znode ACL": ("'digest:mesos 31, world:anyone 1'", "'world:anyone 31'"),
        "/mesos leader znode ACL": ("'digest:mesos 31, world:anyone 1'", "'world:anyone 31'"),
        f"{CHRONOS_HTTP_ADDRESS_FILE} content": ("'127.0.0.1\\n'", "'0.0.0.0\\n'"),
        f"chronos's plain HTTP on TCP {CHRONOS_HTTP_PORT} listening on": (
            "'127.0.0.1'",
            "'0.0.0.0'",
        ),
    }
    assert not any(value in faulty.output for value in secrets.values.values())


def check_image_faults_named(
    faulty: Verified, loaded: LoadedConfig, node: Node, secrets: Secrets
) -> None:
    """The image layer on a booted slave with put_image_faults' faults: exactly what
    first boot changed fails, and each fault, each with what was found."""
    assert faulty.returncode == 1, faulty.output
    failed = dict(faulty.failed)
    assert failed.pop("/etc/mesos-slave/containerizers content") == (
        "'docker,mesos\\n'",
        "'mesos\\n'",
    )
    assert failed.pop("unit marathon at boot") == ("'masked'", "'enabled'")
    # What first boot changed: a booted node is no image.
    assert failed.pop("unit docker at boot") == ("'disabled'", "'enabled'")
    assert failed.pop("unit mesos-slave at boot") == ("'disabled'", "'enabled'")
    assert failed.pop("SSH host keys in /etc/ssh")[1].startswith("['ssh_host_")
    assert failed.pop("/etc/machine-id")[1] != "''"
    # first boot shaped the firewall: the image's SSH-only default zone is emptied
    assert failed.pop("firewall default zone public before first boot") == (
        "'services: dhcpv6-client ssh; ports: -'",
        "'services: dhcpv6-client; ports: -'",
    )
    # cloud-init's own record of this boot: what a baked image must not carry.
    instance_id = node_seed(loaded, node, secrets=secrets).files["meta-data"].split()[1]
    state = ast.literal_eval(failed.pop("cloud-init state in /var/lib/cloud")[1])
    assert state[:2] == ["instance", f"instances/{instance_id}"], state
    assert all(entry.startswith("sem/") for entry in state[2:]), state
    # Not from an installer: no anaconda wrote /etc/selinux/config or made the admin user.
    assert failed.pop("SELinux mode") == (
        "'enforcing'",
        "'no SELINUX= line in /etc/selinux/config'",
    )
    assert failed.pop("password of centos")[1] == "'no such account'"
    assert failed == {}
    assert faulty.checks["/etc/mesos-slave/executor_registration_timeout content"][2]


def put_image_faults(ssh: Ssh) -> None:
    """A wrong containerizers file and a unit enabled at bake time (the RPMs' trap)."""
    sudo_write(ssh, "/etc/mesos-slave/containerizers", "mesos\n")
    ssh("sudo systemctl unmask marathon && sudo systemctl enable marathon")


def undo_image_faults(ssh: Ssh) -> None:
    sudo_write(ssh, "/etc/mesos-slave/containerizers", "docker,mesos\n")
    ssh("sudo systemctl disable marathon && sudo systemctl mask marathon")


# Marathon's launcher puts its zk URL, password included, on its command line, and Marathon
# takes the URL from nowhere else (DESIGN, "Known problems"): the one secret a local user
# on a master may read there. What shows each daemon's command line is seen, so the search
# is not empty.
ON_COMMAND_LINES = {MASTER_ROLE: {ZK_MARATHON_PRINCIPAL.secret}, SLAVE_ROLE: set[str]()}
COMMAND_LINE_MARKS = {
    MASTER_ROLE: ("serve.py mesos-master", f"--zk=file://{MESOS_ZK_URL_FILE}", "--zk zk://"),
    SLAVE_ROLE: ("serve.py mesos-slave --master=",),
}


def secrets_on_command_lines(ssh: Ssh, secrets: Secrets) -> tuple[set[str], str]:
    """The names of the secrets whose values any local user reads in /proc/PID/cmdline
    (read as the SSH user, not root), and the command lines without any value."""
    lines = ssh("for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $f 2>/dev/null; echo; done")
    found = {name for name, value in secrets.values.items() if value in lines}
    for value in secrets.values.values():
        lines = lines.replace(value, "<secret>")
    return found, lines


def check_command_lines(ssh: Ssh, node: Node, secrets: Secrets) -> None:
    found, lines = secrets_on_command_lines(ssh, secrets)
    for role in node.roles:
        for mark in COMMAND_LINE_MARKS[role]:
            assert mark in lines, f"{node.hostname}: no command line shows {mark!r}"
    expected = set().union(*(ON_COMMAND_LINES[role] for role in node.roles))
    assert found == expected, f"{node.hostname}: secrets on command lines: {sorted(found)}"


def _rename_marathon_variable(ssh: Ssh, old: str, new: str) -> None:
    ssh(f"sudo sed -i 's/^{old}=/{new}=/' {MARATHON_DEFAULTS} && sudo systemctl restart marathon")


def leak_http_password_to_marathon_flags(ssh: Ssh) -> None:
    """What builder wrote before: the HTTP user as a MARATHON_ variable, which the launcher
    turns into --http_credentials on the command line. Marathon restarted with it."""
    _rename_marathon_variable(ssh, "MESOSPHERE_HTTP_CREDENTIALS", "MARATHON_HTTP_CREDENTIALS")


def undo_marathon_flags_leak(ssh: Ssh) -> None:
    _rename_marathon_variable(ssh, "MARATHON_HTTP_CREDENTIALS", "MESOSPHERE_HTTP_CREDENTIALS")
