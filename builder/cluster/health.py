"""Is the cluster healthy? Asked the way a real cluster answers, through forwarded ports.

ZooKeeper: `srvr` on every master (a quorum: a majority of the ensemble serving, one
of them the leader). Mesos: `/master/state` on every master (only the leader answers it, the
others redirect to it; every inventory slave among its activated agents). Marathon:
`/v2/leader`; Chronos: its UI. The same questions work on real CentOS nodes;
builder/verify's node specs ask them from inside each node. A secured cluster's
Marathon and Chronos answer over HTTPS only: the host trusts the cluster CA alone and
checks the node's host name on the certificate (it connects to a forwarded loopback
port, so the name is given, not taken from the address).
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import ssl
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from builder.cluster.machine import FORWARDED_SERVICES, LOOPBACK, VmSpec
from builder.config.cluster import HTTP_PRINCIPAL, uses_tls
from builder.config.load import LoadedConfig
from builder.config.secrets import SECRETS_FILE, load_secrets
from builder.config.tls import ca_cert_path
from builder.errors import UserError

TIMEOUT = 3.0
SERVING = ("leader", "follower", "standalone")


@dataclass(frozen=True)
class BasicAuth:
    """HTTP basic credentials for the cluster's APIs (read from the secrets file; never shown)."""

    user: str
    password: str = field(repr=False)

    @property
    def header(self) -> str:
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        return f"Basic {token}"


@dataclass(frozen=True)
class Trust:
    """How the host speaks to a secured cluster's HTTPS APIs: it trusts the cluster CA
    only, and the certificate must name the node it asked."""

    ca_file: Path
    forwards: frozenset[str]  # the forwarded services (MASTER_FORWARDS' names) on TLS

    def context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))


def trust(loaded: LoadedConfig) -> Trust | None:
    """A secured cluster's CA and the forwards on TLS; its CA certificate must be there."""
    secured = loaded.config.cluster.secured
    tls = frozenset(name for name, s in FORWARDED_SERVICES.items() if uses_tls(s, secured))
    if not tls:
        return None
    ca_file = ca_cert_path(loaded.directory)
    if not ca_file.is_file():
        raise UserError(
            f"{ca_file}: missing (the cluster CA's certificate: Mesos, Marathon and Chronos serve "
            "HTTPS with certificates it issued)",
            hint=f"builder --config {loaded.directory} secrets init, then reseed",
        )
    return Trust(ca_file, tls)


@dataclass(frozen=True)
class Client:
    """What the host asks the cluster's APIs with: a secured cluster's login and CA."""

    auth: BasicAuth | None = None
    trust: Trust | None = None


def client(loaded: LoadedConfig) -> Client:
    return Client(http_auth(loaded), trust(loaded))


def http_auth(loaded: LoadedConfig) -> BasicAuth | None:
    """A secured cluster's HTTP credentials, from the secrets file on the host."""
    secrets = load_secrets(loaded.directory) if loaded.config.cluster.secured else None
    if secrets is None:
        return None
    return BasicAuth(HTTP_PRINCIPAL.name, secrets.values[HTTP_PRINCIPAL.secret])


def auth_line(loaded: LoadedConfig) -> str | None:
    """Where a person finds the APIs' password (never the password itself)."""
    if not loaded.config.cluster.secured:
        return None
    return (
        f"the HTTP APIs ask for basic authentication: user {HTTP_PRINCIPAL.name}, "
        f"password: {HTTP_PRINCIPAL.secret} in {loaded.directory / SECRETS_FILE}"
    )


def http_reply(
    port: int,
    path: str,
    auth: BasicAuth | None,
    tls: ssl.SSLContext | None = None,
    name: str = "",
    timeout: float = TIMEOUT,
) -> tuple[int, str, bytes]:
    """Status, WWW-Authenticate and body of a GET on a forwarded port; (0, "", b"") when
    nothing answers (a TLS handshake that fails included). Redirects are not followed: a
    non-leading Mesos master answers 307 to the leader's inventory address, which the
    host must never send to. Over TLS (`tls`), the certificate must be the CA's for
    `name`: the port is on 127.0.0.1, so the name is given, not taken from the address."""
    try:
        with socket.create_connection((LOOPBACK, port), timeout=timeout) as raw:
            connection = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
            connection.sock = tls.wrap_socket(raw, server_hostname=name) if tls else raw
            headers = {"Host": f"{name or LOOPBACK}:{port}"}
            if auth is not None:
                headers["Authorization"] = auth.header
            connection.request("GET", path, headers=headers)
            reply = connection.getresponse()
            return reply.status, reply.headers.get("WWW-Authenticate", ""), reply.read()
    except (OSError, http.client.HTTPException):
        return 0, "", b""


def http_get(
    port: int, path: str, auth: BasicAuth | None, tls: ssl.SSLContext | None = None, name: str = ""
) -> bytes | None:
    """The body of a 2xx answer on a forwarded port, else None (`http_reply`)."""
    status, _, body = http_reply(port, path, auth, tls, name)
    return body if 200 <= status < 300 else None


@dataclass(frozen=True)
class Part:
    """One part of the cluster's health: its name, whether it is healthy, and what was seen."""

    name: str
    healthy: bool
    detail: str


@dataclass(frozen=True)
class Health:
    parts: tuple[Part, ...]
    leader: str | None  # the leading master's hostname

    @property
    def healthy(self) -> bool:
        return all(part.healthy for part in self.parts)

    def unhealthy(self) -> list[Part]:
        return [part for part in self.parts if not part.healthy]

    def line(self) -> str:
        return "; ".join(f"{p.name}: {'ok' if p.healthy else p.detail}" for p in self.parts)


def zookeeper_mode(port: int) -> str:
    """`srvr`'s Mode (leader, follower, standalone), or why there is none."""
    try:
        with socket.create_connection((LOOPBACK, port), timeout=TIMEOUT) as conn:
            conn.sendall(b"srvr")
            reply = b""
            while chunk := conn.recv(4096):
                reply += chunk
    except OSError:
        return "no answer"
    text = reply.decode(errors="replace")
    for line in text.splitlines():
        if line.startswith("Mode:"):
            return line.split(":", 1)[1].strip()
    return "not serving" if "not currently serving" in text else "no answer"


def _ask(vm: VmSpec, forward: str, path: str, client: Client) -> bytes | None:
    port = vm.host_port(forward)
    if not port:
        return None
    trust = client.trust
    tls = trust.context() if trust is not None and forward in trust.forwards else None
    return http_get(port, path, client.auth, tls, vm.hostname if tls else "")


def http_json(vm: VmSpec, forward: str, path: str, client: Client) -> Any:
    body = _ask(vm, forward, path, client)
    try:
        return None if body is None else json.loads(body)
    except ValueError:
        return None


def http_answers(vm: VmSpec, forward: str, path: str, client: Client) -> bool:
    return _ask(vm, forward, path, client) is not None


def ssh_answers(port: int) -> bool:
    """sshd's banner (RFC 4253: the server speaks first, `SSH-2.0-...`) on the port."""
    try:
        with socket.create_connection((LOOPBACK, port), timeout=TIMEOUT) as conn:
            return conn.recv(64).startswith(b"SSH-")
    except OSError:
        return False


def ssh_part(vms: Sequence[VmSpec], running: Mapping[str, bool]) -> Part:
    """Every running VM's sshd answering on its forwarded port (`builder ssh` works)."""
    silent = [
        vm.hostname
        for vm in vms
        if running[vm.hostname] and not ((port := vm.host_port("ssh")) and ssh_answers(port))
    ]
    return Part("ssh", not silent, f"no SSH answer: {', '.join(silent)}" if silent else "answers")


def zookeeper_part(masters: Sequence[VmSpec], running: Mapping[str, bool]) -> Part:
    """A quorum (a majority serving, one leader), and every running member serving: a
    member that runs but does not serve (a wrong myid, a zoo.cfg without it) is named."""
    modes = {}
    for m in masters:
        port = m.host_port("zookeeper")
        modes[m.hostname] = zookeeper_mode(port) if running[m.hostname] and port else "down"
    serving = [name for name, mode in modes.items() if mode in SERVING]
    leaders = [name for name, mode in modes.items() if mode in ("leader", "standalone")]
    stray = [name for name, mode in modes.items() if mode not in (*SERVING, "down")]
    quorum = len(masters) // 2 + 1
    seen = ", ".join(f"{name} {mode}" for name, mode in modes.items())
    if len(serving) < quorum or len(leaders) != 1:
        detail = f"no quorum: {len(serving)} of {len(masters)} serving ({seen})"
        return Part("zookeeper", False, detail)
    if stray:
        return Part("zookeeper", False, f"{', '.join(stray)} not in the ensemble ({seen})")
    return Part("zookeeper", True, f"quorum {len(serving)}/{len(masters)} ({seen})")


def mesos_parts(
    masters: Sequence[VmSpec],
    agents: Sequence[str],
    running: Mapping[str, bool],
    client: Client,
) -> tuple[list[Part], str | None]:
    states = {
        m.hostname: http_json(m, "mesos", "/master/state", client) if running[m.hostname] else None
        for m in masters
    }
    leaders = {s.get("leader") for s in states.values() if isinstance(s, dict) and s.get("leader")}
    leading = [
        (name, s) for name, s in states.items() if isinstance(s, dict) and s.get("pid") in leaders
    ]
    if len(leaders) != 1 or len(leading) != 1:
        seen = ", ".join(sorted(str(x) for x in leaders)) or "none"
        return [
            Part("mesos", False, f"no master is currently leading (leaders seen: {seen})"),
            Part("agents", False, "no leading master to register with"),
        ], None
    name, state = leading[0]
    registered = sorted(
        str(agent.get("hostname")) for agent in state.get("slaves", []) if agent.get("active")
    )
    missing = [agent for agent in agents if agent not in registered]
    agents_part = (
        Part("agents", True, f"{len(registered)} registered")
        if not missing
        else Part("agents", False, f"not registered with {name}: {', '.join(missing)}")
    )
    return [Part("mesos", True, f"{name} leads"), agents_part], name


def framework_parts(
    masters: Sequence[VmSpec], running: Mapping[str, bool], client: Client
) -> list[Part]:
    up = [m for m in masters if running[m.hostname]]
    marathon = [
        m.hostname for m in up if isinstance(http_json(m, "marathon", "/v2/leader", client), dict)
    ]
    chronos = [m.hostname for m in up if http_answers(m, "chronos", "/", client)]
    return [
        Part("marathon", bool(marathon), "answers" if marathon else "no /v2/leader answers"),
        Part("chronos", bool(chronos), "answers" if chronos else "no UI answers"),
    ]


def check(
    vms: Sequence[VmSpec],
    agents: Sequence[str],
    running: Mapping[str, bool],
    required: Collection[str] | None = None,
    client: Client | None = None,
) -> Health:
    """The cluster's health now. `agents`: the slaves' names as their agents report them;
    `required`: the VMs that must run (default: all; a master that is down on purpose
    costs the cluster nothing while its quorum holds); `client`: a secured cluster's HTTP
    credentials and CA."""
    client = client or Client()
    masters = [vm for vm in vms if "master" in vm.roles]
    wanted = set(required) if required is not None else {vm.hostname for vm in vms}
    down = [vm.hostname for vm in vms if vm.hostname in wanted and not running[vm.hostname]]
    parts = [Part("vms", not down, f"not running: {', '.join(down)}" if down else "running")]
    parts.append(zookeeper_part(masters, running))
    mesos, leader = mesos_parts(masters, agents, running, client)
    parts += mesos
    parts += framework_parts(masters, running, client)
    parts.append(ssh_part(vms, running))
    return Health(tuple(parts), leader)
