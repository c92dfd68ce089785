"""The node stand-in's daemons take their flags from the command line their package's
launcher builds, as the real ones do (tests/fixtures/standin/files/serve.py): Mesos'
flag syntax with stout's `file://` fetch, Marathon's and Chronos' Scallop syntax and
their MESOSPHERE_HTTP_CREDENTIALS and MESOSPHERE_KEYSTORE_*, and Marathon's and Chronos'
HTTPS from a PKCS#12 keystore. Each is also shown refusing what the real one refuses."""

from __future__ import annotations

import importlib.util
import socket
import ssl
import threading
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
