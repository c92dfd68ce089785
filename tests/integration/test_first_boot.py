"""First boot on a real VM: the node stand-in, configured by the product, booted with its seed.

Real cloud-init finds the seed ISO (made by builder/isofs.py) by its label and
applies it. Each test then checks over SSH what only a running system shows
(hostname, unit start order against the moment /etc/mesos/zk was written, the
stand-in services answering with the configured ZooKeeper URL), powers the VM
off and reads every first-boot file back from its disk with debugfs.
"""

from __future__ import annotations

import ast
import json
import shlex
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import pytest

from builder.cluster.health import http_auth
from builder.config.cluster import (
    AGENT_CREDENTIAL_FILE,
    ZK_MARATHON_PRINCIPAL,
    ZK_MESOS_PRINCIPAL,
    ClusterFacts,
)
from builder.config.load import LoadedConfig, embedded_config_dir, load_config
from builder.config.model import MASTER_ROLE, SLAVE_ROLE, Node
from builder.config.roles import compose, node_roles
from builder.firstboot.seed import SeedFormat, node_files, node_seed, secret_files, write_seeds
from builder.render.role import PROVISION, render_role
from builder.verify.contract import SecretFile
from tests.conftest import SAMPLE_SECRETS, free_port, write_sample_secrets
from tests.integration.standin import DiskReader, Vm, boot, configured_image

pytestmark = [pytest.mark.integration, pytest.mark.vm]
DEFAULT_USER = "debian"  # cloud-init's default user on the Debian stand-in (centos on CentOS 7)
STACK = ("zookeeper", "mesos-master", "mesos-slave", "marathon", "chronos", "docker")
# A verify run on a TCG node with the other worker's VMs on the same 2 cores.
VERIFY_TIMEOUT = 1200


def _config(tmp_path: Path, cluster_yaml: str, key: Path) -> LoadedConfig:
    directory = tmp_path / "roles-config"
    shutil.copytree(embedded_config_dir(), directory, ignore=shutil.ignore_patterns("__*"))
    public = key.with_suffix(".pub").read_text().split()
    text = cluster_yaml
    if "ssh_authorized_keys:" in text:
        text = "\n".join(line for line in text.splitlines() if not line.startswith("  - ssh-"))
        text = text.replace("ssh_authorized_keys:", "ssh_authorized_keys: []")
    text = text.replace(
        "ssh_authorized_keys: []", f"ssh_authorized_keys: ['{public[0]} {public[1]} tests']"
    )
    if "ssh_authorized_keys" not in text:
        text = text.replace(
            "nodes:", f"ssh_authorized_keys: ['{public[0]} {public[1]} tests']\nnodes:", 1
        )
    (directory / "cluster.yaml").write_text(text)
    write_sample_secrets(directory)  # secured, as users get it
    return load_config(directory)


ZK_PASSWORD = SAMPLE_SECRETS.values["zookeeper_password"]


@dataclass
class Booted:
    loaded: LoadedConfig
    node: Node
    disk: Path
    seed: Path
    work: Path
    key: Path

    def boot(self) -> AbstractContextManager[Vm]:
        """Boot the node alone, its one NIC on its inventory address."""
        network = self.loaded.config.cluster.network or f"{self.node.ip}/24"
        return boot(
            self.disk, self.seed, self.work, self.key, DEFAULT_USER, (self.node.ip, network)
        )


Prepare = Callable[[str, str], Booted]


@pytest.fixture
def first_boot(standin: Path, ssh_key: Path, tmp_path: Path) -> Prepare:
    def prepare(cluster_yaml: str, hostname: str) -> Booted:
        loaded = _config(tmp_path, cluster_yaml, ssh_key)
        node = next(n for n in loaded.config.cluster.nodes if n.hostname == hostname)
        roles = compose(loaded, tuple(r for r in loaded.config.roles if r in node.roles))
        provision = render_role(loaded, roles, packer_version=(1, 6, 6)).files[PROVISION]
        image = configured_image(standin, provision, roles.slug)
        work = tmp_path / hostname
        work.mkdir()
        disk = work / "disk.qcow2"
        subprocess.run(
            ["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(image), "-F", "raw", str(disk)],
            check=True,
        )
        [seed] = write_seeds(loaded, [node], work / "seed", SeedFormat.ISO)
        return Booted(loaded, node, disk, seed, work, ssh_key)

    return prepare


def _unix_time(vm: Vm, unit: str) -> float:
    value = vm.ssh(f"systemctl show -P ActiveEnterTimestamp --timestamp=unix {unit}").strip()
    return float(value.lstrip("@")) if value else 0.0


def _get_json(vm: Vm, booted: Booted, url: str) -> dict[str, object]:
    """A secured node's API, asked on the node with the cluster's HTTP credentials."""
    auth = http_auth(booted.loaded)
    assert auth is not None
    program = (
        "import sys, time, urllib.request\n"
        f"request = urllib.request.Request({url!r}, headers={{'Authorization': {auth.header!r}}})\n"
        "for i in range(60):\n"
        "    try:\n"
        "        print(urllib.request.urlopen(request, timeout=3).read().decode()); break\n"
        "    except Exception:\n"
        "        time.sleep(1)\n"
    )
    result: dict[str, object] = json.loads(vm.ssh(f"python3 -c {shlex.quote(program)}"))
    return result


def _wait_listening(vm: Vm, port: int, deadline: int = 300) -> None:
    program = (
        "import socket, time\n"
        f"end = time.monotonic() + {deadline}\n"
        "while time.monotonic() < end:\n"
        "    try:\n"
        f"        socket.create_connection(('127.0.0.1', {port}), timeout=3).close(); break\n"
        "    except OSError:\n"
        "        time.sleep(2)\n"
        "else:\n"
        f"    raise SystemExit('nothing listens on {port}')\n"
    )
    vm.ssh(f"python3 -c {shlex.quote(program)}")


def check_running_node(vm: Vm, booted: Booted) -> None:
    node, facts = booted.node, ClusterFacts.of(booted.loaded)
    assert vm.ssh("hostname").strip() == node.hostname
    written = float(vm.ssh("stat -c %.9Y /etc/mesos/zk").strip())
    services = facts.units(node)
    started = {unit: _unix_time(vm, unit) for unit in STACK}
    for unit in STACK:
        if unit in services:
            assert vm.ssh(f"systemctl is-active {unit}", check=False).strip() == "active", unit
            assert started[unit] > written, f"{unit} started before /etc/mesos/zk was written"
        else:
            assert started[unit] == 0.0, f"{unit} is not this node's and must never start"
    for role_order in (
        ("zookeeper", "mesos-master", "marathon", "chronos"),
        ("docker", "mesos-slave"),
    ):
        times = [started[unit] for unit in role_order if unit in services]
        assert times == sorted(times), f"start order {role_order}: {times}"
    if MASTER_ROLE in node.roles:
        # ZooKeeper (Java, under TCG) takes a minute or two to listen: wait for it.
        _wait_listening(vm, 2181)
        # its own flags (/master/state answers on the leading master only)
        flags = _get_json(vm, booted, f"http://{node.ip}:5050/master/flags")["flags"]
        assert isinstance(flags, dict)
        assert flags["zk"] == facts.zk_url_as(ZK_MESOS_PRINCIPAL, ZK_PASSWORD)
        assert flags["quorum"] == str(facts.quorum)
        assert flags["authenticate_agents"] == flags["authenticate_frameworks"] == "true"
        info = _get_json(vm, booted, f"http://{node.ip}:8080/v2/info")
        marathon_zk = facts.marathon_zk_as(ZK_MARATHON_PRINCIPAL, ZK_PASSWORD)
        assert info["zookeeper_config"] == {"zk": marathon_zk}
    if SLAVE_ROLE in node.roles:
        slave = _get_json(vm, booted, f"http://{node.ip}:5051/state")["flags"]
        assert isinstance(slave, dict)
        assert slave["master"] == facts.zk_url_as(ZK_MESOS_PRINCIPAL, ZK_PASSWORD)
        assert slave["containerizers"] == "docker,mesos"
        assert slave["executor_registration_timeout"] == "5mins"


@dataclass(frozen=True)
class Verified:
    """`builder verify` run as a user runs it: exit code, output, and each check from JUnit."""

    returncode: int
    output: str
    checks: dict[str, tuple[str, str, bool]]  # what -> expected, found, passed

    @property
    def failed(self) -> dict[str, tuple[str, str]]:
        return {what: (exp, found) for what, (exp, found, ok) in self.checks.items() if not ok}


def builder_verify(booted: Booted, vm: Vm, *args: str, host: bool = True) -> Verified:
    ssh_config = booted.work / "ssh_config"
    if not ssh_config.exists():
        ssh_config.write_text(
            "Host *\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n"
            "  LogLevel ERROR\n  IdentitiesOnly yes\n"
        )
    junit = booted.work / f"verify-{len(list(booted.work.glob('verify-*.xml')))}.xml"
    target = ["--host", f"ssh://{DEFAULT_USER}@127.0.0.1:{vm.port}"] if host else []
    result = run_verify(booted, [*args, *target], ssh_config, junit)
    return Verified(result.returncode, result.stdout + result.stderr, junit_checks(junit))


def run_verify(
    booted: Booted, args: list[str], ssh_config: Path, junit: Path
) -> subprocess.CompletedProcess[str]:
    """`builder verify ARGS` as a user runs it, with the test's key and SSH config."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "builder",
            "--config",
            str(booted.loaded.directory),
            "verify",
            *args,
            "--ssh-identity",
            str(booted.key),
            "--ssh-config",
            str(ssh_config),
            "--junit-xml",
            str(junit),
        ],
        capture_output=True,
        text=True,
        timeout=VERIFY_TIMEOUT,
        check=False,
        stdin=subprocess.DEVNULL,
    )


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


def verify_node_layer(booted: Booted, vm: Vm) -> Verified:
    """Both the node layer's common and role specs pass over SSH, checked one by one."""
    roles = node_roles(booted.loaded, booted.node).label
    verified = builder_verify(booted, vm, roles, "--layer", "node", "--node", booted.node.hostname)
    assert verified.returncode == 0, verified.output
    assert verified.checks, verified.output
    assert not verified.failed
    assert "/etc/mesos/zk mode, owner, digest" in verified.checks
    ip = booted.node.ip
    if SLAVE_ROLE in booted.node.roles:
        assert f"http://{ip}:5051/state without credentials" in verified.checks
    assert f"{len(verified.checks)} checks: {len(verified.checks)} passed, 0 failed" in (
        verified.output.splitlines()
    )
    if MASTER_ROLE in booted.node.roles:
        for port in (2181, 5050, 8080, 4400):
            assert any(f"listening on TCP {port}" in what for what in verified.checks)
        assert f"http://{booted.node.ip}:8080/v2/info master, zk" in verified.checks
        for url in (f"{ip}:5050/master/flags", f"{ip}:8080/v2/info", f"{ip}:4400/scheduler/jobs"):
            assert f"http://{url} without credentials" in verified.checks
        assert "/mesos leader znode ACL" in verified.checks
    return verified


def check_disk(reader: DiskReader, booted: Booted) -> None:
    node, facts = booted.node, ClusterFacts.of(booted.loaded)
    for path, content in node_files(facts, node).items():
        assert reader.read(path) == content, path
    for path, content in secret_files(facts, node, SAMPLE_SECRETS).items():
        assert reader.read(path) == content, path
    assert reader.read("/etc/hostname").strip() == node.hostname
    services = facts.units(node)
    wants = "/etc/systemd/system/multi-user.target.wants"
    for unit in STACK:
        enabled = reader.link(f"{wants}/{unit}.service") != ""
        assert enabled == (unit in services), f"{unit} enabled={enabled}"
        # The image carries exactly this node's roles: the others' units are masked.
        masked = reader.link(f"/etc/systemd/system/{unit}.service") == "/dev/null"
        assert masked == (unit not in services), unit


@pytest.mark.parametrize("hostname", ["test166", "test167"])
def test_default_cluster(first_boot: Prepare, hostname: str) -> None:
    booted = first_boot((embedded_config_dir() / "cluster.yaml").read_text(), hostname)
    with booted.boot() as vm:
        check_running_node(vm, booted)
        verify_node_layer(booted, vm)
        if hostname == "test166":
            node_specs_fail_for_the_right_reason(booted, vm)
    reader = DiskReader(booted.disk, booted.work)
    try:
        check_disk(reader, booted)
        first = {path: reader.mtime(path) for path in ("/etc/mesos/zk", "/etc/hosts")}
        runcmd = reader.mtime("/var/lib/cloud/instance/sem/config_runcmd")
    finally:
        reader.close()
    if hostname != "test167":
        return
    # The same node again: cloud-init redoes nothing, the units come up by themselves.
    with booted.boot() as vm:
        check_running_node(vm, booted)
        image_specs_fail_for_the_right_reason(booted, vm)
    reader = DiskReader(booted.disk, booted.work)
    try:
        check_disk(reader, booted)
        assert {path: reader.mtime(path) for path in first} == first
        assert reader.mtime("/var/lib/cloud/instance/sem/config_runcmd") == runcmd
    finally:
        reader.close()


def _sudo_write(vm: Vm, path: str, content: str) -> None:
    vm.ssh(f"printf %s {shlex.quote(content)} | sudo tee {shlex.quote(path)} >/dev/null")


def _set_leader_acl(vm: Vm, booted: Booted, acl: str) -> None:
    """Set the leading master's znode's ACL as Mesos' digest user (kazoo, on the node)."""
    program = (
        "from kazoo.client import KazooClient\n"
        "from kazoo.security import CREATOR_ALL_ACL, OPEN_ACL_UNSAFE, READ_ACL_UNSAFE\n"
        f"zk = KazooClient(hosts='{booted.node.ip}:2181', "
        f"auth_data=[('digest', 'mesos:{ZK_PASSWORD}')])\n"
        "zk.start(timeout=60)\n"
        "leader = sorted(c for c in zk.get_children('/mesos') if c.startswith('json.info_'))[0]\n"
        f"zk.set_acls('/mesos/' + leader, {acl})\n"
        "zk.stop()\n"
    )
    vm.ssh(f"python3 -c {shlex.quote(program)}")


def node_specs_fail_for_the_right_reason(booted: Booted, vm: Vm) -> None:
    """Faults put on the running master,slave fail exactly the checks they should."""
    facts = ClusterFacts.of(booted.loaded)
    zk = facts.zk_url_as(ZK_MESOS_PRINCIPAL, ZK_PASSWORD) + "\n"
    # An agent that is no node of the inventory registers with the master, and its API
    # answers strangers (its flag gone); then (the running services keep what they read)
    # a ZooKeeper URL without credentials, and the agent's credential readable by all.
    open_flag = "/etc/mesos-slave/?authenticate_http_readonly"
    _sudo_write(vm, "/etc/mesos-slave/hostname", "rogue\n")
    vm.ssh(f"sudo rm {shlex.quote(open_flag)} && sudo systemctl restart mesos-slave")
    _sudo_write(vm, "/etc/mesos/zk", "zk://test166:2181/mesos\n")
    vm.ssh(f"sudo chmod 644 {AGENT_CREDENTIAL_FILE}")
    # and the leading master's znode opened to anyone (by its creator, who may)
    _set_leader_acl(vm, booted, "OPEN_ACL_UNSAFE")
    # The whole cluster, as users ask (`verify --cluster`): test166 answers with its faults,
    # test167 is not up.
    faulty = verify_cluster_with_test167_down(booted, vm)
    _sudo_write(vm, "/etc/mesos/zk", zk)
    _sudo_write(vm, "/etc/mesos-slave/hostname", "test166\n")
    _sudo_write(vm, open_flag, "")
    vm.ssh(f"sudo chmod 600 {AGENT_CREDENTIAL_FILE} && sudo systemctl restart mesos-slave")
    _set_leader_acl(vm, booted, "CREATOR_ALL_ACL + READ_ACL_UNSAFE")
    assert faulty.returncode == 1, faulty.output
    [agents] = [what for what in faulty.checks if "registered agents" in what]
    credential = SecretFile.of(
        AGENT_CREDENTIAL_FILE,
        secret_files(facts, booted.node, SAMPLE_SECRETS)[AGENT_CREDENTIAL_FILE],
    ).digest
    assert faulty.failed == {
        "/etc/mesos/zk mode, owner, digest": (
            repr(f"600 root:root {SecretFile.of('/etc/mesos/zk', zk).digest}"),
            repr(f"600 root:root {SecretFile.of('', 'zk://test166:2181/mesos' + chr(10)).digest}"),
        ),
        f"{AGENT_CREDENTIAL_FILE} mode, owner, digest": (
            repr(f"600 root:root {credential}"),
            repr(f"644 root:root {credential}"),
        ),
        f"{open_flag} content": ("''", "None"),
        f"http://{booted.node.ip}:5051/state without credentials": (
            repr('401 Basic realm="mesos-agent-readonly"'),
            "'200'",
        ),
        "/etc/mesos-slave/hostname content": ("'test166\\n'", "'rogue\\n'"),
        # --cluster wants every slave of the inventory registered
        agents: ("['test166', 'test167']", "['rogue']"),
        "/mesos leader znode ACL": ("'digest:mesos 31, world:anyone 1'", "'world:anyone 31'"),
    }
    # no verify report shows a secret
    assert not any(value in faulty.output for value in SAMPLE_SECRETS.values.values())
    header, first, second = faulty.output.splitlines()
    assert header.split()[:3] == ["NODE", "ROLES", "PASSED"]
    name, roles, passed, *failure = first.split()
    assert (name, roles) == ("test166", "master,slave")
    assert passed == f"{len(faulty.checks) - len(faulty.failed)}/{len(faulty.checks)}", first
    assert any(" ".join(failure).startswith(f"{what}: expected ") for what in faulty.failed)
    assert second.split()[:4] == ["test167", "slave", "-", "unreachable:"]


def verify_cluster_with_test167_down(booted: Booted, vm: Vm) -> Verified:
    """`builder verify --cluster` on test166 (up) and test167 (a port nothing listens on):
    the table as output, test166's checks from its JUnit report."""
    cluster_ssh = booted.work / "cluster_ssh_config"
    cluster_ssh.write_text(
        f"Host 10.86.255.166\n  HostName 127.0.0.1\n  Port {vm.port}\n"
        f"Host 10.86.255.167\n  HostName 127.0.0.1\n  Port {free_port()}\n"
        "Host *\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n"
        "  LogLevel ERROR\n  IdentitiesOnly yes\n  ConnectTimeout 10\n"
    )
    junit = booted.work / "cluster.xml"
    table = run_verify(booted, ["--cluster", "--ssh-user", DEFAULT_USER], cluster_ssh, junit)
    assert not junit.with_name("cluster-test167.xml").exists()
    report = junit.with_name("cluster-test166.xml")
    assert not any(value in report.read_text() for value in SAMPLE_SECRETS.values.values())
    checks = junit_checks(report)
    return Verified(table.returncode, table.stdout, checks)


def image_specs_fail_for_the_right_reason(booted: Booted, vm: Vm) -> None:
    """The image layer on a booted slave with two faults: exactly what first boot changed
    fails, and each fault, each with what was found."""
    # A wrong containerizers file and a unit enabled at bake time (the RPMs' trap).
    _sudo_write(vm, "/etc/mesos-slave/containerizers", "mesos\n")
    vm.ssh("sudo systemctl unmask marathon && sudo systemctl enable marathon")
    faulty = builder_verify(booted, vm, "slave", "--layer", "image")
    _sudo_write(vm, "/etc/mesos-slave/containerizers", "docker,mesos\n")
    vm.ssh("sudo systemctl disable marathon && sudo systemctl mask marathon")
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
    instance_id = (
        node_seed(booted.loaded, booted.node, secrets=SAMPLE_SECRETS).files["meta-data"].split()[1]
    )
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
