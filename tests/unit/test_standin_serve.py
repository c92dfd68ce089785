"""The node stand-in's daemons take their flags from the command line their package's
launcher builds, as the real ones do (tests/fixtures/standin/files/serve.py): Mesos'
flag syntax with stout's `file://` fetch, Marathon's and Chronos' Scallop syntax and
their MESOSPHERE_HTTP_CREDENTIALS and MESOSPHERE_KEYSTORE_*, Marathon's and Chronos'
HTTPS from a PKCS#12 keystore, and libprocess SSL from LIBPROCESS_SSL_* as the seed sets
it. Each is also shown refusing what the real one refuses."""

from __future__ import annotations

import importlib.util
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from builder.config import tls
from tests.conftest import REPO


def _serve() -> ModuleType:
    path = REPO / "tests" / "fixtures" / "standin" / "files" / "serve.py"
    spec = importlib.util.spec_from_file_location("standin_serve", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


serve = _serve()


def test_mesos_flags_fetch_a_file_value_except_for_a_path_flag(tmp_path: Path) -> None:
    url = tmp_path / "zk.url"
    url.write_text("zk://mesos:pw@test166:2181/mesos")
    credentials = tmp_path / "credentials.json"
    flags = serve.mesos_flags(
        [f"--zk=file://{url}", f"--credentials=file://{credentials}", "--quorum=1",
         "--authenticate_agents", "--no-authenticate_http_readwrite"],
        "mesos-master",
        serve.MASTER_PATH_FLAGS,
    )  # fmt: skip
    assert flags == {
        "zk": "zk://mesos:pw@test166:2181/mesos",  # the file's content, every byte
        "credentials": f"file://{credentials}",  # a Path flag keeps its value (stout)
        "quorum": "1",
        "authenticate_agents": "true",
        "authenticate_http_readwrite": "false",
    }


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--quorum=1", "--quorum=2"], "Duplicate flag 'quorum' on command line"),
        (["--zk=file:///nonexistent/zk"], "Error reading file '/nonexistent/zk'"),
        (["quorum=1"], "unexpected argument 'quorum=1'"),
    ],
)
def test_mesos_flags_refused(
    args: list[str], error: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        serve.mesos_flags(args, "mesos-master", serve.MASTER_PATH_FLAGS)
    assert error in capsys.readouterr().err


def test_scallop_flags_take_a_value_or_stand_alone() -> None:
    flags = serve.scallop_flags(
        ["--zk", "zk://h:2181/marathon", "--mesos_authentication", "--hostname", "test166"],
        "marathon",
        serve.MARATHON_BOOLEANS,
    )
    assert flags == {
        "zk": "zk://h:2181/marathon",
        "mesos_authentication": "true",
        "hostname": "test166",
    }


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--hostname"], "Option 'hostname' needs one argument"),
        (["--hostname", "--zk", "z"], "Option 'hostname' needs one argument"),
        (["--zk", "a", "b"], "Excess arguments provided: 'b'"),  # a value split on a blank
        (["--zk", "a", "--zk", "b"], "Option 'zk' is given more than once"),
    ],
)
def test_scallop_flags_refused(
    args: list[str], error: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        serve.scallop_flags(args, "marathon", serve.MARATHON_BOOLEANS)
    assert error in capsys.readouterr().err


@pytest.fixture(scope="module")
def keystore(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A node keystore from a cluster CA (builder's own), for test166 and 127.0.0.1."""
    directory = tmp_path_factory.mktemp("ca")
    ca = tls.write_ca(directory, tls.make_ca())
    node = tls.issue_node_certificate(
        ca, names=["test166.example", "test166"], addresses=["127.0.0.1"], keystore_password=PASS
    )
    path = directory / "node.p12"
    assert node.keystore is not None
    path.write_bytes(node.keystore)
    return path, ca.cert_path


PASS = "sample-keystore-password-0123456789"


def test_marathon_and_chronos_serve_https_from_their_keystore(
    keystore: tuple[Path, Path],
) -> None:
    """The keystore (path and password from MESOSPHERE_KEYSTORE_*, as the seed writes them)
    opens as Java opens it, and the port speaks TLS with the node's certificate: a client
    trusting only the CA reaches it by the node's name, not by another."""
    path, ca_file = keystore
    flags = {"ssl_keystore_path": str(path)}
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MESOSPHERE_KEYSTORE_PASS", PASS)
        serve.keystore_from_environment(flags)
    context = serve.keystore_context(flags, "marathon")
    srv = serve.http_service(
        "marathon", "127.0.0.1", 0, {"/ping": lambda: (200, "text/plain", "pong")}, tls=context
    )
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        port = srv.server_address[1]
        client = ssl.create_default_context(cafile=str(ca_file))
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            client.wrap_socket(raw, server_hostname="test166") as sock,
        ):
            sock.sendall(b"GET /ping HTTP/1.0\r\nHost: test166\r\n\r\n")
            assert sock.recv(4096).split(b"\r\n", 1)[0] == b"HTTP/1.0 200 OK"
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            pytest.raises(ssl.SSLCertVerificationError, match="mismatch"),
        ):
            client.wrap_socket(raw, server_hostname="test167")
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.mark.parametrize(
    ("flags", "error"),
    [
        ({"ssl_keystore_password": "wrong-password-0123456789"}, "keystore password was incorrect"),
        ({}, "--ssl_keystore_path requires --ssl_keystore_password"),
    ],
)
def test_a_keystore_that_does_not_open_stops_the_daemon(
    keystore: tuple[Path, Path],
    flags: dict[str, str],
    error: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        serve.keystore_context({"ssl_keystore_path": str(keystore[0]), **flags}, "marathon")
    assert error in capsys.readouterr().err


def test_marathon_without_http_needs_https(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        serve.marathon(["--master", "zk://h:2181/mesos", "--disable_http"])
    assert "--disable_http requires HTTPS" in capsys.readouterr().err


# ---- libprocess SSL ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pems(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """PEM files as a seed writes them: a CA, a node's certificate and key for 127.0.0.1,
    another node's (another address), and another CA's certificate."""
    directory = tmp_path_factory.mktemp("pems")
    ca = tls.write_ca(directory / "ca", tls.make_ca())
    other_ca = tls.write_ca(directory / "other-ca", tls.make_ca())
    files = {"ca": ca.cert_path, "other-ca": other_ca.cert_path}
    for name, address in (("node", "127.0.0.1"), ("elsewhere", "10.86.255.167")):
        made = tls.issue_node_certificate(
            ca, names=["test166"], addresses=[address], keystore_password=None
        )
        files[f"{name}.crt"] = directory / f"{name}.crt"
        files[f"{name}.crt"].write_text(made.cert_pem)
        files[f"{name}.key"] = directory / f"{name}.key"
        files[f"{name}.key"].write_text(made.key_pem)
    return files


def _ssl_environment(pems: dict[str, Path], node: str = "node", ca: str = "ca") -> dict[str, str]:
    """What the seed's /etc/default/mesos exports (builder's own values)."""
    from builder.config.cluster import libprocess_ssl

    values = libprocess_ssl(str(pems[f"{node}.crt"]), str(pems[f"{node}.key"]))
    return values | {"LIBPROCESS_SSL_CA_FILE": str(pems[ca])}


@pytest.fixture
def tls_master(pems: dict[str, Path]) -> Iterator[int]:
    """A master's libprocess port with the node's SSL: a POST echoes its body."""
    ssl_on = serve.LibprocessSsl("mesos-master", _ssl_environment(pems))
    srv = serve.http_service(
        "mesos-master",
        "127.0.0.1",
        0,
        {"/health": lambda: (200, "text/plain", "")},
        {"/master/echo": lambda body, source: serve.ok(body)},
        tls=ssl_on.server,
    )
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield srv.server_address[1]
    finally:
        srv.shutdown()
        srv.server_close()


def test_a_libprocess_client_reaches_a_tls_master_by_its_address(
    pems: dict[str, Path], tls_master: int
) -> None:
    """An agent or framework with the seed's SSL variables registers over TLS, checking the
    master's certificate against the CA for the IP it connected to; a client like the
    host's health check (Python's defaults, trusting the CA) shares a cipher with it."""
    client = serve.LibprocessSsl("mesos-slave", _ssl_environment(pems))
    url = client.url("127.0.0.1", tls_master)
    assert url.startswith("https://")
    assert client.post_json(f"{url}/master/echo", {"hello": 1}) == {"hello": 1}
    context = ssl.create_default_context(cafile=str(pems["ca"]))
    with (
        socket.create_connection(("127.0.0.1", tls_master), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as sock,
    ):
        assert sock.version() == "TLSv1.2"


@pytest.mark.parametrize(
    ("change", "refusal", "error"),
    [
        ({"LIBPROCESS_SSL_VERIFY_IPADD": "false"}, OSError, "IP address verification is disabled"),
        ({"LIBPROCESS_SSL_CA_FILE": "other-ca"}, ssl.SSLError, "unable to get local issuer"),
        # the server's handshake fails on the plain request: it closes the connection, which
        # the client sees as a close, a reset or a broken pipe, as the timing falls
        ({"LIBPROCESS_SSL_ENABLED": "false"}, ConnectionError, None),
    ],
    ids=["no-ip-verification", "another-ca", "plain-http"],
)
def test_a_tls_master_is_reached_only_as_the_seed_says(
    pems: dict[str, Path],
    tls_master: int,
    change: dict[str, str],
    refusal: type[Exception],
    error: str | None,
) -> None:
    environment = _ssl_environment(pems) | {
        name: str(pems[value]) if value in pems else value for name, value in change.items()
    }
    client = serve.LibprocessSsl("mesos-slave", environment)
    with pytest.raises(refusal, match=error):
        client.post_json(f"{client.url('127.0.0.1', tls_master)}/master/echo", {})


def test_a_master_certificate_for_another_address_is_refused(pems: dict[str, Path]) -> None:
    ssl_on = serve.LibprocessSsl("mesos-master", _ssl_environment(pems, node="elsewhere"))
    srv = serve.http_service(
        "mesos-master", "127.0.0.1", 0, {}, {"/m": lambda b, s: serve.ok(b)}, tls=ssl_on.server
    )
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        client = serve.LibprocessSsl("mesos-slave", _ssl_environment(pems))
        with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
            client.post_json(f"{client.url('127.0.0.1', srv.server_address[1])}/m", {})
    finally:
        srv.shutdown()
        srv.server_close()


def test_libprocess_default_ciphers_share_none_with_todays_clients(
    pems: dict[str, Path],
) -> None:
    """Why the seed sets LIBPROCESS_SSL_CIPHERS: libprocess' default list (RSA and DSS key
    exchange) and a client with Python's defaults on this OpenSSL agree on no cipher."""
    environment = _ssl_environment(pems)
    del environment["LIBPROCESS_SSL_CIPHERS"]
    ssl_on = serve.LibprocessSsl("mesos-master", environment)
    srv = serve.http_service("mesos-master", "127.0.0.1", 0, {}, tls=ssl_on.server)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        context = ssl.create_default_context(cafile=str(pems["ca"]))
        with (
            socket.create_connection(("127.0.0.1", srv.server_address[1]), timeout=10) as raw,
            pytest.raises(ssl.SSLError),
        ):
            context.wrap_socket(raw, server_hostname="127.0.0.1")
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"LIBPROCESS_SSL_VERIFY_CERTS": "true"}, "unknown variable LIBPROCESS_SSL_VERIFY_CERTS"),
        ({"LIBPROCESS_SSL_ENABLED": "yes"}, "Expecting a boolean"),
        ({"LIBPROCESS_SSL_KEY_FILE": ""}, "SSL requires key!"),
        ({"LIBPROCESS_SSL_KEY_FILE": "/nonexistent/node.key"}, "Could not load key file"),
        ({"LIBPROCESS_SSL_CIPHERS": "NO-SUCH-CIPHER"}, "Could not set ciphers"),
        ({"LIBPROCESS_SSL_SUPPORT_DOWNGRADE": "true"}, "does not carry out"),
        ({"LIBPROCESS_SSL_HOSTNAME_VALIDATION_SCHEME": "legacy"}, "'openssl' scheme only"),
    ],
    ids=["unknown", "not-boolean", "no-key", "unreadable-key", "cipher", "downgrade", "legacy"],
)
def test_libprocess_ssl_refused(
    pems: dict[str, Path],
    change: dict[str, str],
    error: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        serve.LibprocessSsl("mesos-master", _ssl_environment(pems) | change)
    assert error in capsys.readouterr().err


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("not json", "Failed to parse JSON"),
        ('{"PATH": 1}', "must only contain string values"),
    ],
)
def test_an_agent_refuses_bad_executor_environment_variables(
    value: str, error: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        serve.mesos_slave(
            ["--master=zk://h:2181/mesos", f"--executor_environment_variables={value}"]
        )
    assert error in capsys.readouterr().err
