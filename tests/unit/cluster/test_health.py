"""The cluster's health from what its services answer: fake answers on loopback, each
check shown passing and failing."""

from __future__ import annotations

import json
import socket
import socketserver
import ssl
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from builder.cluster import health
from builder.cluster.hub import serve
from builder.cluster.machine import VmSpec
from builder.config import tls
from builder.config.load import load_config
from builder.errors import UserError
from tests.conftest import SAMPLE_SECRETS


class Fakes:
    """ZooKeeper `srvr` and HTTP answers on loopback ports, changeable while running."""

    def __init__(self) -> None:
        self.srvr: dict[int, str] = {}
        self.http: dict[tuple[int, str], Any] = {}
        self.servers: list[socketserver.BaseServer] = []
        self.login: str | None = None  # an Authorization header every GET must carry

    def zookeeper(self, text: str) -> int:
        fakes = self

        port = 0

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                if self.request.recv(4) == b"srvr":
                    self.request.sendall(fakes.srvr[port].encode())

        server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        port = int(server.server_address[1])
        self.srvr[port] = text
        self._start(server)
        return port

    def ssh(self, banner: bytes = b"SSH-2.0-OpenSSH_7.4\r\n") -> int:
        """A port that speaks first, as sshd does."""

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                self.request.sendall(banner)

        server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._start(server)
        return int(server.server_address[1])

    def web(self, answers: dict[str, Any], tls: ssl.SSLContext | None = None) -> int:
        fakes = self
        port = 0

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                key = (port, self.path)
                if fakes.login is not None and self.headers.get("Authorization") != fakes.login:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="fake"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if key not in fakes.http:
                    self.send_error(404)
                    return
                body = fakes.http[key]
                data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            server.socket = tls.wrap_socket(
                server.socket, server_side=True, do_handshake_on_connect=False
            )
        port = int(server.server_address[1])
        for path, body in answers.items():
            self.http[(port, path)] = body
        self._start(server)
        return port

    def _start(self, server: socketserver.BaseServer) -> None:
        self.servers.append(server)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()


@pytest.fixture
def fakes() -> Iterator[Fakes]:
    made = Fakes()
    yield made
    made.close()


def _vm(name: str, roles: tuple[str, ...], ports: dict[str, int]) -> VmSpec:
    return VmSpec(
        hostname=name,
        ip="10.86.255.1",
        roles=roles,
        image="",
        overlay="",
        seed="",
        serial="",
        pidfile="",
        cluster_port=0,
        forwards={key: (port, 0) for key, port in ports.items()},
    )


def _master_state(pid: str, leader: str, agents: list[str]) -> dict[str, Any]:
    return {
        "pid": pid,
        "leader": leader,
        "slaves": [{"hostname": name, "active": True} for name in agents],
    }


def _cluster(fakes: Fakes, modes: list[str], agents: list[str]) -> list[VmSpec]:
    vms = []
    for index, mode in enumerate(modes, start=1):
        name = f"m{index}"
        text = f"Zookeeper version: 3.8.0\nMode: {mode}\n" if mode else "not currently serving\n"
        state = _master_state(f"master@{name}:5050", "master@m1:5050", agents if index == 1 else [])
        web = fakes.web(
            {"/master/state": state, "/v2/leader": {"leader": "m1:8080"}, "/": "<html></html>"}
        )
        ports = {"zookeeper": fakes.zookeeper(text), "mesos": web, "marathon": web, "chronos": web}
        vms.append(_vm(name, ("master",), ports | {"ssh": fakes.ssh()}))
    return [*vms, _vm("s1", ("slave",), {"ssh": fakes.ssh()})]


def _up(vms: list[VmSpec], *down: str) -> dict[str, bool]:
    return {vm.hostname: vm.hostname not in down for vm in vms}


def test_a_healthy_cluster(fakes: Fakes) -> None:
    vms = _cluster(fakes, ["leader", "follower", "follower"], ["s1"])
    seen = health.check(vms, ["s1"], _up(vms))
    assert seen.healthy, seen.line()
    assert seen.leader == "m1"
    assert [p.name for p in seen.parts] == [
        "vms",
        "zookeeper",
        "mesos",
        "agents",
        "marathon",
        "chronos",
        "ssh",
    ]
    assert seen.parts[1].detail == "quorum 3/3 (m1 leader, m2 follower, m3 follower)"


def test_a_vm_whose_sshd_is_silent_is_named(fakes: Fakes) -> None:
    """The stack answers, SSH not yet (sshd starting; or something else on the port):
    `up` is not done, `builder ssh` would be refused."""
    vms = _cluster(fakes, ["leader", "follower", "follower"], ["s1"])
    vms[1] = replace(
        vms[1], forwards={**vms[1].forwards, "ssh": (fakes.ssh(b"HTTP/1.1 400\r\n"), 0)}
    )
    vms[3] = replace(vms[3], forwards={**vms[3].forwards, "ssh": (_closed_port(), 0)})
    [part] = health.check(vms, ["s1"], _up(vms)).unhealthy()
    assert (part.name, part.detail) == ("ssh", "no SSH answer: m2, s1")
    # a VM that is down on purpose is not asked
    assert health.check(vms, ["s1"], _up(vms, "m2"), {"m1", "m3", "s1"}).unhealthy()[0].detail == (
        "no SSH answer: s1"
    )


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_no_quorum_is_named(fakes: Fakes) -> None:
    vms = _cluster(fakes, ["", "", "follower"], ["s1"])
    seen = health.check(vms, ["s1"], _up(vms))
    [zookeeper] = [p for p in seen.unhealthy() if p.name == "zookeeper"]
    assert zookeeper.detail == (
        "no quorum: 1 of 3 serving (m1 not serving, m2 not serving, m3 follower)"
    )


def test_a_running_member_outside_the_ensemble_is_named(fakes: Fakes) -> None:
    vms = _cluster(fakes, ["leader", "", "follower"], ["s1"])
    [part] = health.check(vms, ["s1"], _up(vms)).unhealthy()
    assert part.name == "zookeeper"
    assert part.detail.startswith("m2 not in the ensemble")


def test_a_master_down_on_purpose_costs_nothing_while_the_quorum_holds(fakes: Fakes) -> None:
    vms = _cluster(fakes, ["leader", "follower", "follower"], ["s1"])
    required = {"m1", "m2", "s1"}
    seen = health.check(vms, ["s1"], _up(vms, "m3"), required)
    assert seen.healthy, seen.line()
    assert "m3 down" in seen.parts[1].detail
    everything = health.check(vms, ["s1"], _up(vms, "m3"))
    assert everything.unhealthy()[0].detail == "not running: m3"


def test_two_leaders_is_not_quorum(fakes: Fakes) -> None:
    vms = _cluster(fakes, ["leader", "leader", "follower"], ["s1"])
    assert health.check(vms, ["s1"], _up(vms)).parts[1].detail.startswith("no quorum")


def test_an_unregistered_agent_is_named(fakes: Fakes) -> None:
    vms = _cluster(fakes, ["leader", "follower", "follower"], [])
    [part] = health.check(vms, ["s1"], _up(vms)).unhealthy()
    assert (part.name, part.detail) == ("agents", "not registered with m1: s1")


def test_no_leading_master(fakes: Fakes) -> None:
    vms = _cluster(fakes, ["leader", "follower", "follower"], ["s1"])
    for vm in vms[:3]:
        port = vm.host_port("mesos")
        assert port is not None
        fakes.http[(port, "/master/state")] = {"pid": f"master@{vm.hostname}:5050"}
    seen = health.check(vms, ["s1"], _up(vms))
    assert seen.leader is None
    assert [p.name for p in seen.unhealthy()] == ["mesos", "agents"]
    assert seen.unhealthy()[0].detail.startswith("no master is currently leading")


def test_marathon_and_chronos_silent(fakes: Fakes) -> None:
    vms = _cluster(fakes, ["leader", "follower", "follower"], ["s1"])
    for vm in vms[:3]:
        port = vm.host_port("marathon")
        assert port is not None
        del fakes.http[(port, "/v2/leader")]
        del fakes.http[(port, "/")]
    assert [p.name for p in health.check(vms, ["s1"], _up(vms)).unhealthy()] == [
        "marathon",
        "chronos",
    ]


def test_zookeeper_mode_of_nothing_listening() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert health.zookeeper_mode(port) == "no answer"


def test_the_hub_repeats_frames_to_every_other_node_only() -> None:
    nodes = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(3)]
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for sock in [*nodes, stranger]:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        hub_port = probe.getsockname()[1]
    ports = [sock.getsockname()[1] for sock in nodes]
    threading.Thread(target=serve, args=(hub_port, ports), daemon=True).start()
    hub = ("127.0.0.1", hub_port)
    stranger.sendto(b"not ours", hub)
    # The hub may not be listening yet: send until the other nodes hear it.
    nodes[1].settimeout(0.2)
    for _ in range(50):
        nodes[0].sendto(b"frame", hub)
        try:
            assert nodes[1].recv(100) == b"frame"
            break
        except TimeoutError:
            continue
    while True:  # the frames of the earlier tries, if any reached it
        assert nodes[2].recv(100) == b"frame"
        nodes[2].settimeout(0.2)
        try:
            while nodes[2].recv(100):
                pass
        except TimeoutError:
            break
    nodes[0].settimeout(0.5)
    with pytest.raises(TimeoutError):
        nodes[0].recv(100)  # not echoed to its sender; the stranger's frame went nowhere
    for sock in [*nodes, stranger]:
        sock.close()


def test_a_redirect_is_an_answer_not_a_place_to_go() -> None:
    """A non-leading master's 307 names the leader's inventory address, which the host
    must never send to: health reads it as "not the leader" and follows nothing."""
    hits: list[str] = []

    class Elsewhere(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'{"leader": "master@10.86.255.11:5050"}')

        def log_message(self, *args: object) -> None:
            pass

    elsewhere = ThreadingHTTPServer(("127.0.0.1", 0), Elsewhere)
    target = f"//127.0.0.1:{elsewhere.server_address[1]}/master/state"

    class Redirects(Elsewhere):
        def do_GET(self) -> None:
            self.send_response(307)
            self.send_header("Location", target)
            self.end_headers()

    redirecting = ThreadingHTTPServer(("127.0.0.1", 0), Redirects)
    for server in (elsewhere, redirecting):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = int(redirecting.server_address[1])
        vm = _vm("m1", ("master",), {"mesos": port})
        assert health.http_json(vm, "mesos", "/master/state", health.Client()) is None
        assert health.http_answers(vm, "mesos", "/master/state", health.Client()) is False
        # the same redirect followed (what urlopen does by default) would have gone there
        vm = _vm("m1", ("master",), {"mesos": int(elsewhere.server_address[1])})
        assert health.http_json(vm, "mesos", "/master/state", health.Client()) is not None
        assert hits == ["/master/state"]
    finally:
        for server in (elsewhere, redirecting):
            server.shutdown()
            server.server_close()


def test_a_secured_cluster_answers_only_with_its_credentials(fakes: Fakes) -> None:
    vms = _cluster(fakes, ["leader", "follower", "follower"], ["s1"])
    auth = health.BasicAuth("admin", "the-password")
    fakes.login = auth.header
    assert health.check(vms, ["s1"], _up(vms), client=health.Client(auth)).healthy
    for wrong in (None, health.BasicAuth("admin", "not-it")):
        seen = health.check(vms, ["s1"], _up(vms), client=health.Client(wrong))
        assert [p.name for p in seen.unhealthy()] == ["mesos", "agents", "marathon", "chronos"]
    assert "the-password" not in repr(auth)


def _server_context(directory: Path, ca: tls.ClusterCA, name: str) -> ssl.SSLContext:
    node = tls.issue_node_certificate(
        ca, names=[name], addresses=["10.86.255.1"], keystore_password="x" * 16
    )
    pem = directory / f"{name}.pem"
    pem.write_text(node.key_pem + node.cert_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pem)
    return context


def test_https_apis_must_show_the_cluster_cas_certificate_for_the_node(
    fakes: Fakes, tmp_path: Path
) -> None:
    """Marathon and Chronos over TLS: healthy only with a certificate from the cluster CA
    naming the VM asked (the host connects to 127.0.0.1, so the name is the VM's)."""
    (tmp_path / "ours").mkdir()
    (tmp_path / "theirs").mkdir()
    ours = tls.write_ca(tmp_path / "ours", tls.make_ca())
    theirs = tls.write_ca(tmp_path / "theirs", tls.make_ca())
    trust = health.Trust(ours.cert_path, frozenset({"marathon", "chronos"}))
    answers = {"/v2/leader": {"leader": "m1:8443"}, "/": "<html></html>"}
    for context, healthy in (
        (_server_context(tmp_path, ours, "m1"), True),
        (_server_context(tmp_path, ours, "m2"), False),  # another node's
        (_server_context(tmp_path, theirs, "m1"), False),  # another CA's
        (None, False),  # plain HTTP where TLS is expected
    ):
        vms = _cluster(fakes, ["standalone"], ["s1"])
        web = fakes.web(answers, context)
        vms[0] = replace(
            vms[0], forwards={**vms[0].forwards, "marathon": (web, 0), "chronos": (web, 0)}
        )
        seen = health.check(vms, ["s1"], _up(vms), client=health.Client(trust=trust))
        frameworks = [p for p in seen.parts if p.name in ("marathon", "chronos")]
        assert all(p.healthy is healthy for p in frameworks), (context, seen.line())


def test_the_credentials_come_from_the_secrets_file(secured_copy: Path) -> None:
    loaded = load_config(secured_copy)
    auth = health.http_auth(loaded)
    assert auth == health.BasicAuth("admin", SAMPLE_SECRETS.values["http_password"])
    line = health.auth_line(loaded)
    assert line == (
        "the HTTP APIs ask for basic authentication: user admin, "
        f"password: http_password in {secured_copy}/secrets.yaml"
    )
    assert SAMPLE_SECRETS.values["http_password"] not in line
    cluster = secured_copy / "cluster.yaml"
    cluster.write_text(cluster.read_text() + "security: none\n")
    lab = load_config(secured_copy)
    assert (health.http_auth(lab), health.auth_line(lab)) == (None, None)


def test_a_secured_cluster_without_its_ca_certificate_is_named(secured_copy: Path) -> None:
    """`status` or `up` cannot check HTTPS without the CA's certificate: one located line,
    exit 2 (not a traceback)."""
    (secured_copy / "cluster-ca.crt").unlink()
    (secured_copy / "secrets.yaml").unlink()
    (secured_copy / "cluster-ca.key").unlink()
    with pytest.raises(UserError, match=r"cluster-ca\.crt: missing") as raised:
        health.client(load_config(secured_copy))
    assert raised.value.exit_code == 2
