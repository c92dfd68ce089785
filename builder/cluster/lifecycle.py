"""`builder up`, `status`, `ssh`, `down`: the cluster's VMs and the one directory they live in.

State lives in `.builder/cluster/` of the working directory: `cluster.json` (the hub
and every VM: ports, files, pid file), each node's overlay, seed ISO, serial log and
pid file, the hub's pid file, an SSH key made for the cluster (its public half goes
into every seed) and an ssh_config that `builder ssh` and `builder verify --cluster`
use. `builder ssh` shares one connection per node (OpenSSH's ControlMaster, kept for
CONTROL_PERSIST seconds after its last use): its sockets live in a private directory of
their own, since a socket's path must stay short and the state directory's need not.
`down` stops every process by its pid, asks each SSH master to exit and removes both
directories.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from builder import proc
from builder.cluster import health
from builder.cluster.machine import (
    FORWARDED_FROM,
    LOOPBACK,
    SSH_PORT,
    VmSpec,
    guest_ports,
    network_config,
    overlay_command,
    qemu_command,
)
from builder.config.cluster import ClusterFacts
from builder.config.load import LoadedConfig
from builder.config.model import Node
from builder.config.roles import node_roles
from builder.config.secrets import SECRET_MODE
from builder.errors import BuilderError, UserError
from builder.firstboot.seed import (
    META_DATA,
    NETWORK_CONFIG,
    USER_DATA,
    cluster_secrets,
    file_entry,
    node_seed,
)
from builder.firstboot.seed_iso import write_iso
from builder.firstboot.yamldump import dump
from builder.image.manifest import BuildManifest, ImageFormat, ManifestError, image_file
from builder.ssh_master import CONTROL_PERSIST, exit_master

STATE_DIR = Path(".builder") / "cluster"
STATE_FILE = "cluster.json"
KEY = "id_ed25519"
SSH_CONFIG = "ssh_config"
DEADLINES = {"kvm": 300.0, "tcg": 1200.0}
POLL = 5.0


@dataclass(frozen=True)
class ClusterState:
    directory: Path
    hub_port: int
    hub_pidfile: str
    accelerator: str
    ssh_user: str
    vms: tuple[VmSpec, ...]
    control_dir: str = ""  # the SSH masters' sockets ("": `builder ssh` shares nothing)

    def save(self) -> None:
        data = {
            "hub_port": self.hub_port,
            "hub_pidfile": self.hub_pidfile,
            "accelerator": self.accelerator,
            "ssh_user": self.ssh_user,
            "vms": [vm.to_json() for vm in self.vms],
            "control_dir": self.control_dir,
        }
        temporary = self.directory / f".{STATE_FILE}.new"
        temporary.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        os.replace(temporary, self.directory / STATE_FILE)

    @classmethod
    def load(cls, directory: Path) -> ClusterState | None:
        try:
            data = json.loads((directory / STATE_FILE).read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise UserError(f"{directory / STATE_FILE}: unreadable ({exc})") from exc
        return cls(
            directory=directory,
            hub_port=int(data["hub_port"]),
            hub_pidfile=str(data["hub_pidfile"]),
            accelerator=str(data["accelerator"]),
            ssh_user=str(data["ssh_user"]),
            vms=tuple(VmSpec.from_json(vm) for vm in data["vms"]),
            control_dir=str(data.get("control_dir", "")),
        )

    @property
    def key(self) -> Path:
        return self.directory / KEY

    @property
    def ssh_config(self) -> Path:
        return self.directory / SSH_CONFIG

    def vm(self, hostname: str) -> VmSpec:
        for vm in self.vms:
            if vm.hostname == hostname:
                return vm
        known = ", ".join(vm.hostname for vm in self.vms)
        raise UserError(f"no node {hostname!r} in the running cluster ({known})")


def read_pid(pidfile: str | Path) -> int | None:
    try:
        return int(Path(pidfile).read_text().strip())
    except (OSError, ValueError):
        return None


def pid_running(pid: int) -> bool:
    """The process exists and is not a zombie (an exited child nobody has reaped yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def alive(pidfile: str | Path) -> bool:
    pid = read_pid(pidfile)
    return pid is not None and pid_running(pid)


def running(state: ClusterState) -> dict[str, bool]:
    return {vm.hostname: alive(vm.pidfile) for vm in state.vms}


def free_ports(count: int, kind: int = socket.SOCK_STREAM) -> list[int]:
    """Ports free on loopback now (held open together, so all differ)."""
    sockets = [socket.socket(socket.AF_INET, kind) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((LOOPBACK, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass(frozen=True)
class Image:
    path: Path
    accelerator: str


def find_images(loaded: LoadedConfig, nodes: Sequence[Node], output: Path) -> dict[str, Image]:
    """Each node's role set's latest build (output/SLUG/), all missing ones named at once."""
    found: dict[str, Image] = {}
    missing: list[str] = []
    for node in nodes:
        roles = node_roles(loaded, node)
        directory = output / roles.slug
        try:
            manifest = BuildManifest.read(directory)
        except ManifestError as exc:
            raise UserError(f"{directory}/manifest.json: {exc}") from exc
        artifact = manifest.artifact(ImageFormat.QCOW2) if manifest else None
        path = directory / (
            artifact.path if artifact else image_file(roles.slug, ImageFormat.QCOW2)
        )
        if manifest is None or not path.is_file():
            missing.append(f"{node.hostname} needs {path}: run `builder build {roles.label}`")
            continue
        found[node.hostname] = Image(path, manifest.accelerator if manifest else "tcg")
    if missing:
        raise UserError(
            "no image for " + "; ".join(missing),
            hint=f"builder build {' '.join(sorted({node_roles(loaded, n).label for n in nodes}))}",
        )
    return found


def choose_accelerator(images: Sequence[Image]) -> str:
    """KVM when the builds ran under KVM on this host (the build's probe proved it), else TCG."""
    if Path("/dev/kvm").exists() and images and all(i.accelerator == "kvm" for i in images):
        return "kvm"
    return "tcg"


def ensure_key(directory: Path) -> str:
    key = directory / KEY
    if not key.exists():
        proc.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "builder-up", "-f", str(key)]
        )
    return key.with_suffix(".pub").read_text().strip()


def seed_files(
    loaded: LoadedConfig, facts: ClusterFacts, node: Node, public_key: str, seeds: Path | None
) -> dict[str, bytes]:
    """The node's seed (its own, or the one under --seeds), the cluster key added, and the
    network config of `builder up`'s network."""
    if seeds is not None:
        directory = seeds / node.hostname
        try:
            files = {name: (directory / name).read_text() for name in (USER_DATA, META_DATA)}
        except OSError as exc:
            raise UserError(f"{directory}: no seed ({exc.strerror})") from exc
    else:
        files = dict(node_seed(loaded, node, facts, cluster_secrets(loaded)).files)
    files[USER_DATA] = up_user_data(facts, node, files[USER_DATA], public_key)
    files[NETWORK_CONFIG] = dump(network_config(node.hostname, node.ip, hub_network(loaded, node)))
    return {name: text.encode() for name, text in files.items()}


def up_user_data(facts: ClusterFacts, node: Node, user_data: str, public_key: str) -> str:
    """The seed's user-data and what `up` adds: its SSH key, and the forwarding address as
    a firewall source that reaches everything the node serves (the host's forwarded ports
    arrive from QEMU's user network, not from an inventory address). Real seeds never
    carry either: this is `up`'s own, like its network config."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    if not user_data.startswith("#cloud-config\n"):
        raise UserError(f"{node.hostname}: user-data is not #cloud-config")
    try:
        document = YAML(typ="safe").load(user_data)
    except YAMLError as exc:
        raise UserError(f"{node.hostname}: user-data is not YAML ({exc})") from exc
    if not isinstance(document, dict):
        raise UserError(f"{node.hostname}: user-data is not a mapping")
    document["ssh_authorized_keys"] = [public_key, *document.get("ssh_authorized_keys", [])]
    zone = facts.host_zone(node, [FORWARDED_FROM])
    document["write_files"] = [*document.get("write_files", []), file_entry(zone.path, zone.xml)]
    return "#cloud-config\n" + dump(document)


def hub_network(loaded: LoadedConfig, node: Node) -> str:
    """The network of the node's address on the hub: the cluster's network holding it
    (a /24 around it when the cluster names none)."""
    cluster = loaded.config.cluster
    address = ipaddress.IPv4Address(node.ip)
    for network in (*cluster.networks, *([cluster.network] if cluster.network else [])):
        if address in ipaddress.IPv4Network(network):
            return network
    return str(ipaddress.IPv4Network(f"{node.ip}/24", strict=False))


def check_forwarding_source(facts: ClusterFacts) -> None:
    """The forwarding address must be a source of its own (firewalld: one zone each)."""
    forwarded = ipaddress.IPv4Network(FORWARDED_FROM)
    overlapping = [str(block) for block in facts.blocks if block.overlaps(forwarded)]
    if overlapping:
        raise UserError(
            f"the cluster's networks ({', '.join(overlapping)}) hold {FORWARDED_FROM}, the "
            "address `builder up`'s forwarded ports arrive from (QEMU's user network)"
        )


def write_ssh_config(state: ClusterState) -> None:
    lines = []
    for vm in state.vms:
        lines += [
            f"Host {vm.hostname} {vm.ip}",
            f"  HostName {LOOPBACK}",
            f"  Port {vm.host_port('ssh')}",
        ]
    lines += [
        "Host *",
        f"  User {state.ssh_user}",
        f"  IdentityFile {state.key.resolve()}",
        "  IdentitiesOnly yes",
        "  StrictHostKeyChecking no",
        "  UserKnownHostsFile /dev/null",
        "  LogLevel ERROR",
        "  ConnectTimeout 10",
    ]
    if state.control_dir:
        lines += [
            "  ControlMaster auto",
            f"  ControlPath {Path(state.control_dir) / '%C'}",
            f"  ControlPersist {CONTROL_PERSIST}",
        ]
    state.ssh_config.write_text("\n".join(lines) + "\n")


def start_hub(state: ClusterState) -> None:
    if alive(state.hub_pidfile):
        return
    log = open(state.directory / "hub.log", "ab")  # noqa: SIM115 - the hub keeps it
    hub = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "builder.cluster.hub",
            str(state.hub_port),
            *(str(vm.cluster_port) for vm in state.vms),
        ],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,
        env=proc.minimal_env({"PYTHONPATH": str(Path(__file__).resolve().parents[2])}),
    )
    log.close()
    Path(state.hub_pidfile).write_text(f"{hub.pid}\n")


# QEMU's words when a forwarded host port is taken (hostfwd binds it at start).
PORT_TAKEN = "Could not set up host forwarding rule"
START_TRIES = 3


def start_vm(vm: VmSpec, state: ClusterState) -> VmSpec:
    """Start the VM and return it as started. Its host ports were free when chosen, but
    another process may bind one before QEMU does (a port from the ephemeral range can go
    to any outgoing connection): QEMU then refuses to start, and the VM is started again
    on ports chosen afresh, up to START_TRIES times."""
    for attempt in range(1, START_TRIES + 1):
        Path(vm.pidfile).unlink(missing_ok=True)
        try:
            proc.run(qemu_command(vm, state.hub_port, state.accelerator), timeout=120)
        except proc.ToolFailed as exc:
            if PORT_TAKEN not in exc.output or attempt == START_TRIES:
                raise
            vm = with_fresh_forwards(vm)
            continue
        return vm
    raise AssertionError("unreachable")


def with_fresh_forwards(vm: VmSpec) -> VmSpec:
    hosts = free_ports(len(vm.forwards))
    return replace(
        vm,
        forwards={
            name: (host, guest)
            for (name, (_, guest)), host in zip(vm.forwards.items(), hosts, strict=True)
        },
    )


def start_vms(state: ClusterState, starting: Sequence[VmSpec]) -> ClusterState:
    """Start each VM; when one had to move its host ports, the state and the SSH config
    say where it is now."""
    started = {vm.hostname: start_vm(vm, state) for vm in starting}
    if all(started[vm.hostname] == vm for vm in starting):
        return state
    state = replace(state, vms=tuple(started.get(vm.hostname, vm) for vm in state.vms))
    state.save()
    write_ssh_config(state)
    return state


def plan(
    loaded: LoadedConfig, directory: Path, nodes: Sequence[Node], images: dict[str, Image]
) -> list[VmSpec]:
    specs = []
    udp = free_ports(len(nodes), socket.SOCK_DGRAM)
    for node, cluster_port in zip(nodes, udp, strict=True):
        wanted = guest_ports(node, loaded.config.cluster.secured)
        hosts = free_ports(len(wanted))
        base = directory / node.hostname
        specs.append(
            VmSpec(
                hostname=node.hostname,
                ip=node.ip,
                roles=tuple(node_roles(loaded, node).names),
                image=str(images[node.hostname].path.resolve()),
                overlay=str(base.with_suffix(".qcow2")),
                seed=str(base.with_name(f"{node.hostname}-cidata.iso")),
                serial=str(base.with_suffix(".serial.log")),
                pidfile=str(base.with_suffix(".pid")),
                cluster_port=cluster_port,
                forwards={
                    name: (host, guest)
                    for (name, guest), host in zip(wanted.items(), hosts, strict=True)
                },
            )
        )
    return specs


def up(
    loaded: LoadedConfig,
    names: Sequence[str],
    *,
    output: Path,
    directory: Path = STATE_DIR,
    seeds: Path | None = None,
    ssh_user: str | None = None,
    deadline: float | None = None,
    say: Callable[[str], None],
) -> tuple[ClusterState, health.Health]:
    """Boot the cluster (or restart its dead VMs) and wait until it is healthy."""
    directory = directory.absolute()  # the state names its files wherever it is read from
    facts = ClusterFacts.of(loaded)
    cluster_secrets(loaded)  # a secured cluster without its secrets: refused before anything
    every = list(loaded.config.cluster.nodes)
    by_name = {node.hostname: node for node in every}
    unknown = [name for name in names if name not in by_name]
    if unknown:
        raise UserError(f"no node {', '.join(unknown)} in the cluster ({', '.join(by_name)})")
    state = ClusterState.load(directory)
    if state is None:
        chosen = [by_name[name] for name in dict.fromkeys(names)] or every
        images = find_images(loaded, chosen, output)
        check_forwarding_source(facts)
        directory.mkdir(parents=True, exist_ok=True)
        public_key = ensure_key(directory)
        specs = plan(loaded, directory, chosen, images)
        state = ClusterState(
            directory=directory,
            hub_port=free_ports(1, socket.SOCK_DGRAM)[0],
            hub_pidfile=str(directory / "hub.pid"),
            accelerator=choose_accelerator(list(images.values())),
            ssh_user=ssh_user or loaded.config.os.admin.name,
            vms=tuple(specs),
        )
        for node, vm in zip(chosen, specs, strict=True):
            proc.run(overlay_command(Path(vm.image), Path(vm.overlay)))
            files = seed_files(loaded, facts, node, public_key, seeds)
            write_iso(Path(vm.seed), "cidata", files, mode=SECRET_MODE)
        # the SSH masters' sockets: mkdtemp's directory is 0700 and its path short
        state = replace(state, control_dir=tempfile.mkdtemp(prefix="builder-ssh-"))
        state.save()
        write_ssh_config(state)
        starting = list(state.vms)
    else:
        wanted = set(names) or {vm.hostname for vm in state.vms}
        starting = [vm for vm in state.vms if vm.hostname in wanted and not alive(vm.pidfile)]
        if not starting and alive(state.hub_pidfile):
            say(f"the cluster is already running ({len(state.vms)} VMs): builder status")
            return state, health.check(
                state.vms, agents(facts, state), running(state), client=health.client(loaded)
            )
    start_hub(state)
    say(f"starting {', '.join(vm.hostname for vm in starting)} ({state.accelerator})")
    state = start_vms(state, starting)
    client = health.client(loaded)
    for line in url_lines(state, client.trust):
        say(line)
    if auth_line := health.auth_line(loaded):
        say(auth_line)
    if client.trust is not None:
        say(trust_line(client.trust, state))
    limit = deadline if deadline is not None else DEADLINES[state.accelerator]
    required = set(names) or {vm.hostname for vm in state.vms}
    return state, wait_healthy(state, agents(facts, state), required, limit, say, client)


def agents(facts: ClusterFacts, state: ClusterState) -> list[str]:
    """The slaves of the running cluster, as their agents name themselves."""
    names = {vm.hostname for vm in state.vms if "slave" in vm.roles}
    return [facts.fqdn(node) for node in facts.cluster.nodes if node.hostname in names]


def wait_healthy(
    state: ClusterState,
    agent_names: Sequence[str],
    required: set[str],
    limit: float,
    say: Callable[[str], None],
    client: health.Client | None = None,
) -> health.Health:
    start = time.monotonic()
    last = ""
    while True:
        seen = health.check(state.vms, agent_names, running(state), required, client)
        elapsed = time.monotonic() - start
        if seen.healthy:
            say(f"healthy after {elapsed:.0f} s: {seen.leader} leads")
            return seen
        if elapsed > limit:
            parts = "; ".join(f"{p.name}: {p.detail}" for p in seen.unhealthy())
            raise BuilderError(
                f"the cluster is not healthy after {limit:g} s: {parts}",
                hint=f"serial logs in {state.directory}; builder status; builder down",
            )
        line = seen.line()
        if line != last:
            say(f"[{elapsed:4.0f} s] {line}")
            last = line
        time.sleep(POLL)  # polling with a deadline


def url_lines(state: ClusterState, trust: health.Trust | None = None) -> list[str]:
    table = [("NODE", "ADDRESS", "ROLES", "SSH", "URLS")]
    tls = trust.forwards if trust is not None else frozenset()
    for vm in state.vms:
        urls = " ".join(
            f"{name}={'https' if name in tls else 'http'}://{LOOPBACK}:{vm.host_port(name)}"
            for name in ("mesos", "marathon", "chronos", "agent")
            if vm.host_port(name)
        )
        table.append(
            (vm.hostname, vm.ip, ",".join(vm.roles), f"{LOOPBACK}:{vm.host_port('ssh')}", urls)
        )
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    return [
        "  ".join(f"{cell:{widths[i]}}" for i, cell in enumerate(row[:4])) + "  " + row[4]
        for row in table
    ]


def trust_line(trust: health.Trust, state: ClusterState) -> str:
    """How a person checks the HTTPS URLs: the CA, and the node's name, which its
    certificate carries (the forwarded address, 127.0.0.1, it does not)."""
    example = next((vm for vm in state.vms if vm.host_port("marathon")), None)
    shown = ""
    if example is not None:
        port = example.host_port("marathon")
        shown = (
            f" (curl --cacert {trust.ca_file} --resolve {example.hostname}:{port}:{LOOPBACK}"
            f" https://{example.hostname}:{port}/v2/info)"
        )
    return (
        f"HTTPS ({', '.join(sorted(trust.forwards))}): certificates from the cluster CA "
        f"{trust.ca_file}, for each node's name{shown}"
    )


def status(loaded: LoadedConfig, directory: Path = STATE_DIR) -> tuple[list[str], bool]:
    state = ClusterState.load(directory)
    if state is None:
        return ["no cluster is running here (builder up starts one)"], False
    facts = ClusterFacts.of(loaded)
    up_now = running(state)
    client = health.client(loaded)
    seen = health.check(state.vms, agents(facts, state), up_now, client=client)
    lines = []
    for line, vm in zip(url_lines(state, client.trust), (None, *state.vms), strict=True):
        mark = "STATE" if vm is None else ("running" if up_now[vm.hostname] else "DEAD")
        lines.append(f"{mark:8} {line}")
    lines.append(f"leading master: {seen.leader or 'none'}")
    for part in seen.parts:
        lines.append(f"{'ok  ' if part.healthy else 'FAIL'}  {part.name}: {part.detail}")
    return lines, seen.healthy


def ssh_command(directory: Path, hostname: str, command: Sequence[str]) -> list[str]:
    state = ClusterState.load(directory)
    if state is None:
        raise UserError("no cluster is running here (builder up starts one)")
    state.vm(hostname)
    return ["ssh", "-F", str(state.ssh_config), hostname, *command]


def _stop(pidfile: str | Path, name: str) -> None:
    pid = read_pid(pidfile)
    if pid is None or not alive(pidfile):
        return
    if "qemu" not in name and "hub" not in name:
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    end = time.monotonic() + 20
    while time.monotonic() < end and alive(pidfile):
        time.sleep(0.2)
    if alive(pidfile):
        os.kill(pid, signal.SIGKILL)


def _owned(pid: int | None, marker: str) -> bool:
    """The pid still runs the process we started (not a reused pid)."""
    if pid is None:
        return False
    try:
        return marker in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False


def stop_vm(vm: VmSpec) -> None:
    if _owned(read_pid(vm.pidfile), f"builder-{vm.hostname}"):
        _stop(vm.pidfile, "qemu")
    Path(vm.pidfile).unlink(missing_ok=True)


def down(directory: Path = STATE_DIR) -> list[str]:
    state = ClusterState.load(directory)
    if state is None:
        if directory.exists():
            _remove(directory)
        return ["no cluster is running here"]
    stopped = []
    for vm in state.vms:
        if alive(vm.pidfile):
            stopped.append(vm.hostname)
        stop_vm(vm)
    if _owned(read_pid(state.hub_pidfile), "builder.cluster.hub"):
        _stop(state.hub_pidfile, "hub")
    close_ssh_masters(state)
    _remove(directory)
    return [f"stopped {', '.join(stopped) or 'nothing (no VM was running)'}; removed {directory}"]


def close_ssh_masters(state: ClusterState) -> None:
    """Ask every node's shared SSH connection to exit (one whose VM is gone has already
    exited) and remove their directory."""
    if not state.control_dir:
        return
    control = Path(state.control_dir)
    for socket_path in sorted(control.glob("*")):
        exit_master(socket_path)
    shutil.rmtree(control, ignore_errors=True)


def _remove(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)
    parent = directory.parent
    if parent.name == ".builder" and parent.exists() and not any(parent.iterdir()):
        parent.rmdir()


__all__ = ["SSH_PORT", "ClusterState", "down", "ssh_command", "status", "up"]
