"""`builder up`: the inventory's cluster as VMs from the stand-in images, with the real ZooKeeper.

The node stand-in, configured by the product for each role set, is laid out as
`output/SLUG/` the way `builder build` leaves it; `builder up` boots every node
with its seed on the loopback hub, and the checks ask what a real cluster
answers: ZooKeeper's `srvr`, Mesos' /master/state and the agents' /state,
Marathon's /v2/leader. Every VM is stopped by `builder down` (by its pid), and
the test checks that no process and no file is left.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from builder.cluster import health
from builder.cluster.health import BasicAuth, http_auth, http_reply
from builder.cluster.lifecycle import STATE_DIR, ClusterState, pid_running, read_pid
from builder.config.cluster import (
    AGENT_CREDENTIAL_FILE,
    HTTP_REALMS,
    ROLE_SECRETS,
    ClusterFacts,
    node_secret_names,
    uses_tls,
)
from builder.config.load import LoadedConfig, embedded_config_dir, load_config
from builder.config.model import Node
from builder.config.roles import node_roles
from builder.config.secrets import NODE_SECRETS_DIR, SECRETS_FILE, Secrets, load_secrets
from builder.config.tls import ca_cert_path, make_ca, write_ca
from builder.render.role import PROVISION, render_role
from tests.integration.node_checks import (
    Ssh,
    Verified,
    check_command_lines,
    check_disk,
    check_image_faults_named,
    check_node_faults_named,
    check_node_layer,
    check_running_node,
    junit_checks,
    leak_http_password_to_marathon_flags,
    put_image_faults,
    put_node_faults,
    secrets_on_command_lines,
    undo_image_faults,
    undo_marathon_flags_leak,
    undo_node_faults,
)
from tests.integration.standin import DiskReader, configured_image, lay_out_build, ssh_retried
from tests.integration.vmslots import HeldSlots, vm_slots

pytestmark = [pytest.mark.integration, pytest.mark.vm]
STANDIN_USER = "debian"  # cloud-init's default user on the stand-in (centos on CentOS 7)
# Under TCG with the other worker's VMs on the same 2 cores (CI), generous: they only
# cost time when something is wrong.
VERIFY_TIMEOUT = 1800
STACK_UNITS = "zookeeper mesos-master mesos-slave marathon chronos"
STATUS_SETTLE = 120  # status asked again after up said healthy (a late answer, not a change)
CHANGE_DEADLINE = 900  # a failover, a quorum lost, an ensemble re-formed
# A highly available cluster on the same isolated network: three masters, one slave.
THREE_MASTERS = """\
name: ha
network: 10.86.255.0/24
admin_networks: [10.86.255.200/32]
nodes:
  - {hostname: m1, ip: 10.86.255.11, roles: [master]}
  - {hostname: m2, ip: 10.86.255.12, roles: [master]}
  - {hostname: m3, ip: 10.86.255.13, roles: [master]}
  - {hostname: s1, ip: 10.86.255.21, roles: [slave]}
"""


@dataclass
class Work:
    directory: Path
    loaded: LoadedConfig
    slots: HeldSlots | None = None  # a slot per node (the cluster fixture's)

    def builder(self, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "builder", *args],
            cwd=self.directory,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def state(self) -> ClusterState:
        state = ClusterState.load(self.directory / STATE_DIR)
        assert state is not None
        return state

    def status(self) -> tuple[int, str]:
        result = self.builder("status", timeout=120)
        return result.returncode, result.stdout

    def ssh(self, node: str, command: str) -> str:
        result = ssh_retried(lambda: self.builder("ssh", node, command, timeout=180))
        assert result.returncode == 0, result.stderr
        return result.stdout


def _cluster_dir(tmp_path: Path, standin: Path, cluster_yaml: str | None) -> Work:
    config = tmp_path / "roles-config"
    shutil.copytree(embedded_config_dir(), config, ignore=shutil.ignore_patterns("__*"))
    if cluster_yaml is not None:
        (config / "cluster.yaml").write_text(cluster_yaml)
    loaded = load_config(config)
    for roles in {node_roles(loaded, node) for node in loaded.config.cluster.nodes}:
        provision = render_role(loaded, roles, packer_version=(1, 6, 6)).files[PROVISION]
        image = configured_image(standin, provision, roles.slug)
        lay_out_build(tmp_path / "output", image, roles.label, roles.slug)
    return Work(tmp_path, loaded)


MakeCluster = Callable[[str | None], Work]


@pytest.fixture
def cluster(tmp_path: Path, standin: Path) -> Iterator[MakeCluster]:
    """Makes the work directory and holds a VM slot per node (tests/integration/vmslots.py);
    after the test, `builder down`, and any VM still running (a failed test's) killed by
    its pid."""
    made: list[Work] = []
    with contextlib.ExitStack() as slots:

        def make(cluster_yaml: str | None) -> Work:
            work = _cluster_dir(tmp_path, standin, cluster_yaml)
            work.slots = slots.enter_context(vm_slots(len(work.loaded.config.cluster.nodes)))
            made.append(work)
            return work

        yield make
        for work in made:
            state = ClusterState.load(work.directory / STATE_DIR)
            pids = [read_pid(vm.pidfile) for vm in state.vms] if state else []
            hub = read_pid(state.hub_pidfile) if state else None
            work.builder("down", timeout=300)
            for pid in [*pids, hub]:
                if pid is not None and pid_running(pid):
                    os.kill(pid, signal.SIGKILL)  # the test's own VM: never left behind


def _until(predicate: object, what: str, deadline: float) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(5)  # polling with a deadline
    raise AssertionError(f"no {what} within {deadline:g} s")


def _parts(status_output: str) -> dict[str, tuple[bool, str]]:
    parts = {}
    for line in status_output.splitlines():
        if line.startswith(("ok  ", "FAIL")):
            verdict, rest = line.split(None, 1)
            name, detail = rest.split(": ", 1)
            parts[name] = (verdict == "ok", detail)
    return parts


def _leader(status_output: str) -> str:
    [line] = [x for x in status_output.splitlines() if x.startswith("leading master: ")]
    return line.split(": ", 1)[1]


def _up_seconds(output: str) -> float:
    [line] = [x for x in output.splitlines() if x.startswith("healthy after ")]
    return float(line.split()[2])


def _stop(work: Work, node: str) -> None:
    """Power a VM off the hard way, by its pid (a crashed machine)."""
    pid = read_pid(work.state().vm(node).pidfile)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    _until(lambda: not pid_running(pid), f"{node} stopped", 60)


def _get(
    port: int, path: str, auth: BasicAuth | None, tls: ssl.SSLContext | None = None, name: str = ""
) -> tuple[int, str, bytes]:
    """status, WWW-Authenticate, body of a GET from the host through a forwarded port
    (0 when a service restarting resets QEMU's forward, or a TLS handshake fails)."""
    return http_reply(port, path, auth, tls, name, timeout=10)


def _ask(
    work: Work, node: str, forward: str, path: str, auth: BasicAuth | None
) -> tuple[int, bytes]:
    """status and body of a GET on one of the node's forwarded APIs, over TLS trusting the
    cluster CA where the cluster serves it (by the node's name), as `builder up` asks."""
    port = work.state().vm(node).host_port(forward)
    assert port is not None
    trust = health.trust(work.loaded)
    tls = trust.context() if trust is not None and forward in trust.forwards else None
    code, _, body = _get(port, path, auth, tls, node if tls else "")
    return code, body


def _trusting(ca_file: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca_file))


def _auth(work: Work) -> BasicAuth:
    auth = http_auth(work.loaded)
    assert auth is not None
    return auth


def test_default_cluster_up_verify_down(
    cluster: MakeCluster, record_property: Callable[[str, object], None]
) -> None:
    work = cluster(None)
    # Secured, as users get it: without secrets the seed is refused, one line, exit 2.
    refused = work.builder("up", "--ssh-user", STANDIN_USER)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "secrets init" in refused.stderr
    assert not (work.directory / STATE_DIR).exists()
    made = work.builder("secrets", "init")
    assert made.returncode == 0, made.stderr
    started = time.monotonic()
    result = work.builder("up", "--ssh-user", STANDIN_USER)
    assert result.returncode == 0, result.stdout + result.stderr
    # The figure for the record (--junit-xml keeps it): `up` to healthy, under TCG here.
    record_property("up_to_healthy_seconds", round(time.monotonic() - started))
    assert _up_seconds(result.stdout) > 0
    table = result.stdout.splitlines()
    assert any(line.startswith("test166  10.86.255.166  master,slave") for line in table)
    assert "marathon=https://127.0.0.1:" in result.stdout  # Marathon and Chronos: HTTPS
    assert "chronos=https://127.0.0.1:" in result.stdout
    assert f"certificates from the cluster CA {ca_cert_path(work.loaded.directory)}" in (
        result.stdout
    )
    # status is a probe of its own (3 s per answer): under a loaded host one answer can come
    # late just after up's (CI, 240137f: ZooKeeper "no answer" once), so it is asked again
    # for a short while; a cluster that stays unhealthy still fails here.
    _until(lambda: work.status()[0] == 0, "status healthy after up", STATUS_SETTLE)
    code, status = work.status()
    assert code == 0, status
    assert _leader(status) == "test166"
    assert all(ok for ok, _ in _parts(status).values()), status
    # test167's agent found test166 through zk://test166:2181/mesos and registered over the
    # network: the master lists it at its inventory address. An agent alone only reads the
    # leader's znode (world-readable), so its URL carries no ZooKeeper password.
    auth = _auth(work)
    agent = _agent_state(work, "test167", auth)
    assert agent["flags"]["master"] == "zk://test166:2181/mesos"
    assert agent["master_hostname"] == "test166"
    check_every_api_asks_for_basic_auth(work, auth)
    check_the_apis_speak_tls_with_the_cluster_ca(work, auth)
    status_code, body = _ask(work, "test166", "mesos", "/master/state", auth)
    assert status_code == 200
    state = json.loads(body)
    assert state["leader"] == "master@10.86.255.166:5050"
    agents = {a["hostname"]: a["pid"] for a in state["slaves"]}
    assert agents == {
        "test166": "slave(1)@10.86.255.166:5051",
        "test167": "slave(1)@10.86.255.167:5051",
    }
    assert {f["name"] for f in state["frameworks"]} == {"marathon", "chronos"}
    check_the_leader_znode_is_read_only_to_strangers(work)
    check_a_wrong_agent_credential_is_refused(work, auth)
    # What first boot left on each node, as only a running system shows it.
    secrets = load_secrets(work.loaded.directory)
    assert secrets is not None
    nodes = {node.hostname: node for node in work.loaded.config.cluster.nodes}
    for name, node in nodes.items():
        check_running_node(_on(work, name), work.loaded, node, secrets)
        check_command_lines(_on(work, name), node, secrets)
    # A second up says so; verify --cluster needs no flags.
    again = work.builder("up")
    assert again.returncode == 0
    assert "already running" in again.stdout
    junit = work.directory / "verify.xml"
    verified = _verify_cluster_steady(work, junit)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    rows = [line.split()[:3] for line in verified.stdout.splitlines()[1:]]
    assert [row[:2] for row in rows] == [["test166", "master,slave"], ["test167", "slave"]]
    for (name, _, passed), node in zip(rows, nodes.values(), strict=True):
        checks = junit_checks(junit.with_name(f"verify-{name}.xml"))
        fqdn = ClusterFacts.of(work.loaded).fqdn(node)
        check_node_layer(Verified(verified.returncode, verified.stdout, checks), node, fqdn)
        assert passed == f"{len(checks)}/{len(checks)}"
    check_the_secrets_stay_in_the_seeds(work, [made, result, again, verified], "test167")
    check_image_faults_are_named(work, secrets, nodes["test167"])
    check_a_secret_on_a_command_line_is_found(work, secrets)
    # A VM that went down: status says so; its disk holds what first boot wrote. (A VM
    # that `up` starts again is the three-master test's: one boot fewer here.)
    _power_off(work, "test167")
    code, status = work.status()
    assert code == 1
    assert "DEAD" in next(line for line in status.splitlines() if " test167 " in line)
    assert _parts(status)["vms"] == (False, "not running: test167")
    reader = DiskReader(Path(work.state().vm("test167").overlay), work.directory)
    try:
        check_disk(reader, work.loaded, nodes["test167"], secrets)
    finally:
        reader.close()
    check_node_faults_are_named(work, auth, secrets, nodes["test166"])
    # down: every VM stopped by its pid, nothing left; a second down is fine.
    state_dir = work.directory / STATE_DIR
    final = work.state()
    pids = [read_pid(vm.pidfile) for vm in final.vms if vm.hostname != "test167"]
    pids.append(read_pid(final.hub_pidfile))
    assert all(pid is not None and pid_running(pid) for pid in pids)
    # `builder ssh` shared test166's connection: its master is still there, and down ends it
    control = Path(final.control_dir)
    assert len(list(control.iterdir())) == 1, sorted(control.iterdir())
    assert len(_ssh_masters(control)) == 1
    down = work.builder("down", timeout=300)
    assert down.returncode == 0, down.stderr
    assert not any(pid_running(pid) for pid in pids if pid is not None)
    assert not control.exists()
    assert _ssh_masters(control) == []
    assert not state_dir.exists()
    assert not (work.directory / ".builder").exists()
    assert work.builder("down").returncode == 0


def _ssh_masters(control: Path) -> list[int]:
    """The SSH masters serving a socket in `control`: OpenSSH retitles a master
    `ssh: SOCKET [mux]` (its command line is gone from /proc/PID/cmdline)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            if cmdline.read_bytes().decode(errors="replace").startswith(f"ssh: {control}/"):
                found.append(int(cmdline.parent.name))
    return found


def _restarts(work: Work) -> dict[str, str]:
    """Each node's stack units' restart counts (systemd's NRestarts)."""
    return {
        vm.hostname: work.ssh(vm.hostname, f"systemctl show -P NRestarts {STACK_UNITS}")
        for vm in work.state().vms
    }


def _verify_cluster_steady(work: Work, junit: Path) -> subprocess.CompletedProcess[str]:
    """`verify --cluster` on the healthy cluster. Under TCG on a loaded host a ZooKeeper
    session can expire, and a master or framework then exits and restarts (as Mesos' and
    Marathon's do): a failed run during which a unit restarted is run once more."""
    for _ in range(2):
        _until(lambda: work.status()[0] == 0, "the cluster healthy", CHANGE_DEADLINE)
        before = _restarts(work)
        verified = work.builder(
            "verify", "--cluster", "--junit-xml", str(junit), timeout=VERIFY_TIMEOUT
        )
        if verified.returncode == 0 or _restarts(work) == before:
            break
    return verified


def _on(work: Work, node: str) -> Ssh:
    return lambda command: work.ssh(node, command)


def _first_boot_times(work: Work, node: str) -> str:
    """When first boot wrote the node's files and ran its runcmd (mtimes, nanoseconds)."""
    paths = "/etc/mesos/zk /etc/hosts /var/lib/cloud/instance/sem/config_runcmd"
    return work.ssh(node, f"sudo stat -c '%n %.9Y' {paths}")


def _power_off(work: Work, node: str) -> None:
    """Power a VM off from inside for good (its disk then clean for reading back), and
    give its VM slot back."""
    pid = read_pid(work.state().vm(node).pidfile)
    assert pid is not None
    work.builder("ssh", node, "sudo systemctl --no-block poweroff", timeout=120)
    _until(lambda: not pid_running(pid), f"{node} powered off", 300)
    assert work.slots is not None
    work.slots.release()


def _registered_agents(work: Work, auth: BasicAuth) -> list[str]:
    code, body = _ask(work, "test166", "mesos", "/master/state", auth)
    return sorted(agent["hostname"] for agent in json.loads(body)["slaves"]) if code == 200 else []


def check_node_faults_are_named(
    work: Work, auth: BasicAuth, secrets: Secrets, test166: Node
) -> None:
    """Faults put on the running master,slave with test167 down: `verify --cluster` fails
    exactly the checks they should, test167 a row of its own."""
    on166 = _on(work, "test166")
    put_node_faults(on166, test166, secrets)
    # the master forgets test167's agent (75 s unheard) and knows test166's as rogue
    _until(lambda: _registered_agents(work, auth) == ["rogue"], "only rogue registered", 300)
    junit = work.directory / "faulty.xml"
    table = work.builder("verify", "--cluster", "--junit-xml", str(junit), timeout=VERIFY_TIMEOUT)
    undo_node_faults(on166, work.loaded, test166, secrets)
    assert not junit.with_name("faulty-test167.xml").exists()
    report = junit.with_name("faulty-test166.xml")
    assert not any(value in report.read_text() for value in secrets.values.values())
    faulty = Verified(table.returncode, table.stdout + table.stderr, junit_checks(report))
    check_node_faults_named(faulty, work.loaded, test166, secrets, ["test166", "test167"])
    header, first, second = table.stdout.splitlines()
    assert header.split()[:3] == ["NODE", "ROLES", "PASSED"]
    name, roles, passed, *failure = first.split()
    assert (name, roles) == ("test166", "master,slave")
    assert passed == f"{len(faulty.checks) - len(faulty.failed)}/{len(faulty.checks)}", first
    assert any(" ".join(failure).startswith(f"{what}: expected ") for what in faulty.failed)
    assert second.split()[:4] == ["test167", "slave", "-", "unreachable:"]


def check_a_secret_on_a_command_line_is_found(work: Work, secrets: Secrets) -> None:
    """The command-line search shown failing: with the HTTP user back in a MARATHON_
    variable (as builder wrote it before), Marathon's launcher puts it on the command line."""
    on166 = _on(work, "test166")
    leak_http_password_to_marathon_flags(on166)
    try:
        _until(
            lambda: "http_password" in secrets_on_command_lines(on166, secrets)[0],
            "HTTP password on Marathon's command line",
            CHANGE_DEADLINE,
        )
        found, lines = secrets_on_command_lines(on166, secrets)
        assert found == {"http_password", "marathon_zookeeper_password"}
        assert "--http_credentials admin:<secret>" in lines
    finally:
        undo_marathon_flags_leak(on166)


def check_image_faults_are_named(work: Work, secrets: Secrets, test167: Node) -> None:
    """The image layer on booted test167 with two faults (verify ROLE --host, as a user
    checks one machine): exactly what first boot changed fails, and each fault."""
    on167 = _on(work, "test167")
    put_image_faults(on167)
    state, junit = work.state(), work.directory / "image.xml"
    result = work.builder(
        "verify",
        "slave",
        "--layer",
        "image",
        "--host",
        f"ssh://{STANDIN_USER}@{test167.ip}",
        "--ssh-config",
        str(state.ssh_config),
        "--ssh-identity",
        str(state.key),
        "--junit-xml",
        str(junit),
        timeout=VERIFY_TIMEOUT,
    )
    undo_image_faults(on167)
    faulty = Verified(result.returncode, result.stdout + result.stderr, junit_checks(junit))
    check_image_faults_named(faulty, work.loaded, test167, secrets)


def test_three_masters_elect_fail_over_and_lose_quorum(
    cluster: MakeCluster, record_property: Callable[[str, object], None]
) -> None:
    work = cluster(THREE_MASTERS)
    made = work.builder("secrets", "init")
    assert made.returncode == 0, made.stderr
    started = time.monotonic()
    result = work.builder("up", "--ssh-user", STANDIN_USER)
    assert result.returncode == 0, result.stdout + result.stderr
    record_property("up_to_healthy_seconds", round(time.monotonic() - started))
    # Issue 14 rides along on this cluster (no VMs of its own): the firewall's scopes
    # with real connections, the secrets only where they belong.
    verified = check_the_firewall_scopes(work)
    check_the_secrets_stay_in_the_seeds(work, [made, result, verified], "s1")
    secrets = load_secrets(work.loaded.directory)
    assert secrets is not None
    for node in work.loaded.config.cluster.nodes:
        check_command_lines(_on(work, node.hostname), node, secrets)
    code, status = work.status()
    assert code == 0, status
    zookeeper = _parts(status)["zookeeper"]
    assert zookeeper[0], zookeeper
    assert zookeeper[1].startswith("quorum 3/3"), zookeeper
    modes = sorted(part.split()[1] for part in zookeeper[1].split("(", 1)[1][:-1].split(", "))
    assert modes == ["follower", "follower", "leader"]
    first = _leader(status)
    assert first in ("m1", "m2", "m3")
    written = _first_boot_times(work, first)
    # The leading master's VM stops: another master leads, the agent registers with it.
    _stop(work, first)

    def failed_over() -> bool:
        _, now = work.status()
        parts = _parts(now)
        return _leader(now) not in ("none", first) and parts["agents"][0]

    _until(failed_over, "new leading master with s1 registered", CHANGE_DEADLINE)
    _, status = work.status()
    second = _leader(status)
    # s1's own /state (its HTTP API wants the cluster's credentials, as every API does)
    assert _agent_state(work, "s1", _auth(work))["master_hostname"] == second
    # Two of three members gone (a VM down, a ZooKeeper stopped): no quorum.
    work.ssh(second, "sudo systemctl stop zookeeper")
    _until(
        lambda: not _parts(work.status()[1])["zookeeper"][0],
        "ZooKeeper losing its quorum",
        CHANGE_DEADLINE,
    )
    code, status = work.status()
    assert code == 1
    # The one left may still call itself a follower until it notices (syncLimit): either
    # way, fewer than two of three serve.
    detail = _parts(status)["zookeeper"][1]
    assert detail.startswith(("no quorum: 0 of 3 serving", "no quorum: 1 of 3 serving")), status
    assert f"{first} down" in detail, detail
    assert f"{second} no answer" in detail, detail
    # One back: the quorum is there again.
    work.ssh(second, "sudo systemctl start zookeeper")
    _until(
        lambda: _parts(work.status()[1])["zookeeper"][1].startswith("quorum 2/3"),
        "ZooKeeper's quorum again, two of three",
        CHANGE_DEADLINE,
    )
    # up starts the stopped VM: the same node again (its first boot's files and runcmd
    # untouched: cloud-init redoes nothing after a crash), its units up by themselves.
    back = work.builder("up", first)
    assert back.returncode == 0, back.stdout + back.stderr
    assert f"starting {first}" in back.stdout
    zookeeper = _parts(work.status()[1])["zookeeper"]
    assert zookeeper[0], zookeeper
    assert zookeeper[1].startswith("quorum 3/3"), zookeeper
    # healthy includes sshd's answer: `builder ssh` works at once
    assert _first_boot_times(work, first) == written
    node = next(n for n in work.loaded.config.cluster.nodes if n.hostname == first)
    check_running_node(_on(work, first), work.loaded, node, secrets, first_boot=False)
    check_a_member_outside_the_ensemble_is_named(work)


def check_a_member_outside_the_ensemble_is_named(work: Work) -> None:
    """The ensemble broken on the running masters: m2's myid made no member's, m3's zoo.cfg
    without m2. m1 and m3 keep a quorum; m2 runs in none, and health names it (`up`
    stops its deadline with the same parts: tests/unit/cluster/test_lifecycle.py)."""
    myid, zoo_cfg = "/var/lib/zookeeper/myid", "/etc/zookeeper/conf/zoo.cfg"
    assert work.ssh("m2", f"sudo cat {myid}").strip() == "2"
    work.ssh("m2", f"echo 7 | sudo tee {myid} >/dev/null && sudo systemctl restart zookeeper")
    assert "server.2=m2:2888:3888" in work.ssh("m3", f"sudo cat {zoo_cfg}").splitlines()
    work.ssh("m3", f"sudo sed -i '/^server.2=/d' {zoo_cfg} && sudo systemctl restart zookeeper")

    def named() -> bool:
        code, status = work.status()
        healthy, detail = _parts(status)["zookeeper"]
        return code == 1 and not healthy and detail.startswith("m2 not in the ensemble (m1 ")

    _until(named, "m2 named as in no ensemble, m1 and m3 serving", CHANGE_DEADLINE)


# The three-master cluster's one admin address is no node's: 10.86.255.200, which the
# test adds to s1 beside its own. From 10.86.255.21 (cluster, not admin) and from
# 10.86.255.200 (admin) the same node makes the same connections.
ADMIN_ADDRESS = "10.86.255.200"
_PROBE = """\
import errno, json, socket, sys
source, host, ports = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
seen = {}
for port in ports:
    conn = socket.socket()
    conn.settimeout(5)
    conn.bind((source, 0))
    try:
        conn.connect((host, int(port)))
        seen[port] = "open"
    except ConnectionRefusedError:
        seen[port] = "nothing listens"
    except socket.timeout:
        seen[port] = "no answer"
    except OSError as exc:
        seen[port] = "rejected" if exc.errno == errno.EHOSTUNREACH else errno.errorcode[exc.errno]
    finally:
        conn.close()
print(json.dumps(seen))
"""


def _connect(work: Work, node: str, source: str, host: str, ports: list[int]) -> dict[str, str]:
    """Real TCP connections from `node`, from its address `source`, to `host`'s ports:
    open, nothing listens (allowed, no listener), rejected (firewalld's ICMP
    admin-prohibited: EHOSTUNREACH), or no answer."""
    command = f"python3 -c {shlex.quote(_PROBE)} {source} {host} {','.join(map(str, ports))}"
    seen: dict[str, str] = json.loads(work.ssh(node, command))
    return seen


def check_the_firewall_scopes(work: Work) -> subprocess.CompletedProcess[str]:
    """Issue 14, part 1, with real connections between the nodes: cluster-internal ports
    answer the cluster's network, SSH and the UIs only an admin address, nothing else is
    reachable; the host stays an admin through `up`'s forwarding source. Returns
    `verify --cluster`'s result (the running firewall is what verify expects)."""
    nic = work.ssh("s1", "ip -o -4 addr show to 10.86.255.21/32").split()[1]
    work.ssh("s1", f"sudo ip addr add {ADMIN_ADDRESS}/32 dev {nic}")
    ui_and_ssh, internal = [22, 8443, 4443], [2181, 5050]
    closed = 9999  # no zone opens it
    stranger = _connect(
        work, "s1", "10.86.255.21", "10.86.255.11", [*ui_and_ssh, *internal, closed]
    )
    assert stranger == {
        "22": "rejected",
        "8443": "rejected",
        "4443": "rejected",
        "2181": "open",
        "5050": "open",
        "9999": "rejected",
    }, stranger
    admin = _connect(work, "s1", ADMIN_ADDRESS, "10.86.255.11", [*ui_and_ssh, *internal, closed])
    assert admin == {
        "22": "open",
        "8443": "open",
        "4443": "open",
        "2181": "open",
        "5050": "open",
        "9999": "rejected",
    }, admin
    # the other way: m1 is a cluster member, not an admin, of s1; its task ports are
    # the cluster's (allowed, though nothing listens there yet)
    member = _connect(work, "m1", "10.86.255.11", "10.86.255.21", [22, 5051, 31000, closed])
    assert member == {
        "22": "rejected",
        "5051": "open",
        "31000": "nothing listens",
        "9999": "rejected",
    }, member
    # the host, through the forwarded ports (up's own source), reaches the UIs (HTTPS)
    marathon = work.state().vm("m1").host_port("marathon")
    assert marathon is not None
    tls = _trusting(ca_cert_path(work.loaded.directory))
    assert _get(marathon, "/v2/leader", _auth(work), tls, "m1")[0] == 200
    assert _get(marathon, "/v2/leader", None, tls, "m1")[:2] == (401, 'Basic realm="Mesosphere"')
    verified = work.builder("verify", "--cluster", timeout=VERIFY_TIMEOUT)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    return verified


def check_the_secrets_stay_in_the_seeds(
    work: Work, commands: list[subprocess.CompletedProcess[str]], slave: str
) -> None:
    """Issue 14, part 3: each secret a root-only file on the node, and in no artifact
    but the seeds and the nodes' own disks: not in the images (output/), the serial
    logs, the state, nor in anything the commands printed."""
    secrets = load_secrets(work.loaded.directory)
    assert secrets is not None
    nodes = {node.hostname: node for node in work.loaded.config.cluster.nodes}
    listing = f"sudo sh -c 'stat -c \"%a %U %n\" {NODE_SECRETS_DIR}/*'"
    on_node = work.ssh(slave, listing).split("\n")
    # an agent holds its own secrets only (no ZooKeeper password, no keystore's)
    assert sorted(filter(None, on_node)) == [
        f"600 root {NODE_SECRETS_DIR}/{name}" for name in sorted(ROLE_SECRETS["slave"])
    ]
    printed = "".join(r.stdout + r.stderr for r in commands)
    legitimate = {work.loaded.directory / SECRETS_FILE}
    for vm in work.state().vms:
        legitimate |= {Path(vm.seed), Path(vm.overlay)}
    needles = [value.encode() for value in secrets.values.values()]
    assert not any(value in printed for value in secrets.values.values())
    for path in work.directory.rglob("*"):
        if path.is_file() and path not in legitimate:
            assert _holding(path, needles) == [], path
    for vm in work.state().vms:
        names = node_secret_names(nodes[vm.hostname])
        assert _holding(Path(vm.seed), needles) == [
            value.encode() for name, value in secrets.values.items() if name in names
        ], vm.hostname
        assert Path(vm.seed).stat().st_mode & 0o777 == 0o600


def _holding(path: Path, needles: list[bytes]) -> list[bytes]:
    """The needles the file holds, read once in chunks (images are large)."""
    found: list[bytes] = []
    longest = max(len(needle) for needle in needles)
    tail = b""
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 24):
            window = tail + chunk
            found += [n for n in needles if n not in found and n in window]
            tail = window[-longest:]
    return [n for n in needles if n in found]


def _agent_state(work: Work, node: str, auth: BasicAuth) -> dict[str, Any]:
    """The agent's /state asked on the node itself, with the cluster's HTTP credentials."""
    code, body = _ask(work, node, "agent", "/state", auth)
    assert code == 200, code
    state: dict[str, Any] = json.loads(body)
    return state


# Each API a forwarded port reaches: (node, forwarded port's name, service, a path).
_APIS = [
    ("test166", "mesos", "mesos-master", "/master/state"),
    ("test166", "marathon", "marathon", "/v2/info"),
    ("test166", "chronos", "chronos", "/scheduler/jobs"),
    ("test166", "agent", "mesos-slave", "/state"),
    ("test167", "agent", "mesos-slave", "/state"),
]


def check_every_api_asks_for_basic_auth(work: Work, auth: BasicAuth) -> None:
    """Issue 14, part 2: 5050, Marathon's 8443, Chronos' 4443 (HTTPS) and the agents' 5051
    answer 401 and their realm without basic authentication, a wrong password too, and
    200 with the cluster's."""
    wrong = BasicAuth(auth.user, "not-the-password")
    trust = _trusting(ca_cert_path(work.loaded.directory))
    seen = {}
    for node, name, service, path in _APIS:
        port = work.state().vm(node).host_port(name)
        assert port is not None
        tls = trust if uses_tls(service, secured=True) else None
        seen[f"{node} {service}"] = (
            _get(port, path, None, tls, node)[:2],
            _get(port, path, wrong, tls, node)[0],
            _get(port, path, auth, tls, node)[0],
        )
    assert seen == {
        f"{node} {service}": ((401, f'Basic realm="{HTTP_REALMS[service]}"'), 401, 200)
        for node, _, service, path in _APIS
    }, seen


def check_the_apis_speak_tls_with_the_cluster_ca(work: Work, auth: BasicAuth) -> None:
    """Issue 14, part 4: every API answers over TLS only, with a certificate from the
    cluster's CA for the node's name and address: test166's Marathon and Chronos (HTTPS)
    and Mesos' master, and both agents (libprocess SSL). A client trusting the CA reaches
    each by the node's name and by its address (each checked against the certificate),
    not by the other node's name, not trusting another CA, and not in plain HTTP (no
    downgrade). Marathon's 8080 does not answer on the node at all, Chronos' 4400 on
    loopback only."""
    directory = work.loaded.directory
    trust = _trusting(ca_cert_path(directory))
    other = directory.parent / "other-ca"
    other.mkdir(exist_ok=True)
    stranger = _trusting(write_ca(other, make_ca()).cert_path)
    addresses = {n.hostname: n.ip for n in work.loaded.config.cluster.nodes}
    seen = {}
    for node, name, _, path in _APIS:
        port = work.state().vm(node).host_port(name)
        assert port is not None
        someone_else = next(other for other in addresses if other != node)
        seen[f"{node} {name}"] = [
            _get(port, path, auth, tls, host)[0]
            for tls, host in (
                (trust, node),
                (trust, addresses[node]),
                (trust, someone_else),
                (stranger, node),
                (None, ""),
            )
        ]
    assert seen == {f"{node} {name}": [200, 200, 0, 0, 0] for node, name, _, _ in _APIS}, seen
    listening = work.ssh("test166", "ss -Hltn '( sport = :8080 or sport = :4400 )'").split()
    assert [word for word in listening if word.endswith((":8080", ":4400"))] == [
        "127.0.0.1:4400"
    ], listening


_ZK_STRANGER = """\
import json
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
zk = KazooClient(hosts="127.0.0.1:2181")
zk.start(timeout=30)
[leader] = sorted(c for c in zk.get_children("/mesos") if c.startswith("json.info_"))[:1]
path = "/mesos/" + leader
data, _ = zk.get(path)
acls, _ = zk.get_acls(path)
seen = {"read": json.loads(data.decode())["hostname"],
        "acl": sorted("%s:%s %d" % (a.id.scheme, a.id.id.split(":")[0], a.perms) for a in acls)}
for what, action in (("set", lambda: zk.set(path, b"{}")), ("delete", lambda: zk.delete(path)),
                     ("create", lambda: zk.create("/mesos/json.info_9999999999", b"{}"))):
    try:
        action()
        seen[what] = "done"
    except NoAuthError:
        seen[what] = "NoAuth"
zk.stop()
print(json.dumps(seen))
"""


def check_the_leader_znode_is_read_only_to_strangers(work: Work) -> None:
    """A client without credentials on the master (real ZooKeeper, kazoo) reads the leading
    master's record but cannot rewrite or delete it, nor add a contender: Mesos created
    them with the digest user of its zk URL, creator-all and world-read."""
    seen = json.loads(work.ssh("test166", f"python3 -c {shlex.quote(_ZK_STRANGER)}"))
    assert seen == {
        "read": "test166",
        "acl": ["digest:mesos 31", "world:anyone 1"],
        "set": "NoAuth",
        "delete": "NoAuth",
        "create": "NoAuth",
    }, seen


def check_a_wrong_agent_credential_is_refused(work: Work, auth: BasicAuth) -> None:
    """test167's agent with a secret the masters do not know: it logs the refusal and does
    not register, and the master logs why; with its own credential back it registers."""
    saved = f"{AGENT_CREDENTIAL_FILE}.saved"
    since = work.ssh("test167", "date +%s").strip()
    work.ssh(
        "test167",
        f"sudo cp -p {AGENT_CREDENTIAL_FILE} {saved} && "
        f"sudo sh -c 'printf \"agent not-the-secret\\n\" > {AGENT_CREDENTIAL_FILE}' && "
        "sudo systemctl restart mesos-slave",
    )

    def refused() -> bool:
        log = work.ssh("test167", f"sudo journalctl -u mesos-slave --since @{since} --no-pager")
        return "Authentication failed" in log

    _until(refused, "the agent's refused authentication in its log", 180)
    assert "master_hostname" not in _agent_state(work, "test167", auth)
    master_log = work.ssh("test166", f"sudo journalctl -u mesos-master --since @{since} --no-pager")
    assert "Failed to authenticate principal 'agent' at 10.86.255.167" in master_log, master_log
    work.ssh(
        "test167",
        f"sudo mv {saved} {AGENT_CREDENTIAL_FILE} && sudo systemctl restart mesos-slave",
    )

    def registered() -> bool:
        code, body = _ask(work, "test167", "agent", "/state", auth)
        return code == 200 and json.loads(body).get("master_hostname") == "test166"

    _until(registered, "test167's agent registered again", 180)
