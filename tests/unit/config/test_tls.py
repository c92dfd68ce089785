"""The cluster CA (`builder secrets init|rotate`) and node certificates, checked by the
real tools: openssl verifies the chain, Python's ssl makes real handshakes on loopback,
openssl and Java's keytool open the keystores; each check is shown failing on a
certificate, name, address or password that is wrong."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from builder import proc
from builder.config import tls
from builder.config.secrets import load_secrets, write_secrets
from builder.errors import UserError
from tests.conftest import CliRun, require_tool

NAMES = ("test166.cluster.example", "test166")
ADDRESS = "10.86.255.166"
PASSWORD = "keystore-pw-Zq8x"


def _git(directory: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(directory), *args], check=True, capture_output=True)


def _openssl(*args: str, data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["openssl", *args], input=data, capture_output=True, check=False)


@pytest.fixture
def config(config_copy: Path) -> Path:
    """A config with its secrets and CA, inside a git repository (as a user keeps it)."""
    _git(config_copy.parent, "init", "-q", ".")
    write_secrets(config_copy, rotate=False)
    return config_copy


def _ca(config_dir: Path) -> tls.ClusterCA:
    loaded = load_secrets(config_dir)
    assert loaded is not None
    assert loaded.ca is not None
    return loaded.ca


@pytest.fixture
def other_ca(tmp_path: Path) -> tls.ClusterCA:
    """Another cluster's CA (made the same way, so only the key tells them apart)."""
    return tls.write_ca(tmp_path / "other", tls.make_ca())


def _issue(ca: tls.ClusterCA) -> tls.NodeCertificate:
    return tls.issue_node_certificate(
        ca, names=NAMES, addresses=[ADDRESS], keystore_password=PASSWORD
    )


def _write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text)
    path.chmod(0o600)
    return path


def test_init_puts_the_ca_beside_the_secrets(config: Path) -> None:
    ca = _ca(config)
    assert (ca.key_path, ca.cert_path) == (config / "cluster-ca.key", config / "cluster-ca.crt")
    assert ca.key_path.stat().st_mode & 0o777 == 0o600
    assert ca.cert_path.stat().st_mode & 0o777 == 0o644
    text = _openssl("x509", "-in", str(ca.cert_path), "-noout", "-text").stdout.decode()
    assert "CA:TRUE" in text
    assert "Certificate Sign" in text
    # the key is the certificate's
    key_half = _openssl("pkey", "-in", str(ca.key_path), "-pubout").stdout
    cert_half = _openssl("x509", "-in", str(ca.cert_path), "-noout", "-pubkey").stdout
    assert key_half == cert_half
    assert key_half.startswith(b"-----BEGIN PUBLIC KEY-----")
    # refused when others may read the key, or when half of the CA is missing
    ca.key_path.chmod(0o640)
    with pytest.raises(UserError, match=r"cluster-ca.key: readable by others \(mode 0640\)"):
        load_secrets(config)
    ca.key_path.chmod(0o600)
    ca.cert_path.rename(config / "elsewhere.crt")
    with pytest.raises(UserError, match=r"cluster-ca.crt: missing"):
        load_secrets(config)
    ca.key_path.unlink()
    with pytest.raises(UserError, match=r"cluster-ca.key: no cluster CA beside the secrets"):
        load_secrets(config)


def test_openssl_verifies_the_node_certificate_against_its_ca_only(
    config: Path, other_ca: tls.ClusterCA, tmp_path: Path
) -> None:
    ca = _ca(config)
    node = _write(tmp_path / "node", "node.crt", _issue(ca).cert_pem)
    stranger = _write(tmp_path / "stranger", "node.crt", _issue(other_ca).cert_pem)
    ours = _openssl("verify", "-purpose", "sslserver", "-CAfile", str(ca.cert_path), str(node))
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout.decode().strip() == f"{node}: OK"
    theirs = _openssl(
        "verify", "-purpose", "sslserver", "-CAfile", str(ca.cert_path), str(stranger)
    )
    assert theirs.returncode != 0
    assert b"unable to get local issuer certificate" in theirs.stderr + theirs.stdout
    # what the certificate says: its names and address, not a CA, about 825 days
    shown = _openssl(
        "x509",
        "-in",
        str(node),
        "-noout",
        "-subject",
        "-enddate",
        "-ext",
        "subjectAltName,basicConstraints,extendedKeyUsage",
    ).stdout.decode()
    assert "subject=CN = test166.cluster.example" in shown
    assert "DNS:test166.cluster.example, DNS:test166, IP Address:10.86.255.166" in shown
    assert "CA:FALSE" in shown
    assert "TLS Web Server Authentication, TLS Web Client Authentication" in shown
    end = shown.split("notAfter=")[1].splitlines()[0]
    expires = datetime.strptime(end, "%b %d %H:%M:%S %Y %Z").replace(tzinfo=UTC)
    lifetime = expires - datetime.now(UTC)
    assert timedelta(days=824) < lifetime <= timedelta(days=825)


@pytest.fixture
def serving(tmp_path: Path) -> Iterator[tuple[int, list[tls.NodeCertificate]]]:
    """A TLS server on loopback presenting the certificate the test puts in the list:
    one handshake per connection, then it answers `ok`."""
    served: list[tls.NodeCertificate] = []
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(30)
    port = listener.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            if stop.is_set():
                connection.close()
                return
            cert = served[-1]
            directory = tmp_path / f"served-{len(served)}"
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(
                _write(directory, "node.crt", cert.cert_pem),
                _write(directory, "node.key", cert.key_pem),
            )
            try:
                with context.wrap_socket(connection, server_side=True) as wrapped:
                    wrapped.sendall(b"ok")
            except (ssl.SSLError, OSError):
                connection.close()  # the client refused the certificate

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield port, served
    stop.set()
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass
    thread.join(timeout=30)
    listener.close()


def _handshake(port: int, ca: tls.ClusterCA, server_hostname: str) -> bytes:
    """A client that trusts only the cluster CA, checking the name (or IP) it is given."""
    context = ssl.create_default_context(cafile=str(ca.cert_path))
    assert context.check_hostname
    with (
        socket.create_connection(("127.0.0.1", port), timeout=30) as raw,
        context.wrap_socket(raw, server_hostname=server_hostname) as wrapped,
    ):
        return wrapped.recv(2)


def test_a_real_handshake_checks_chain_names_and_address(
    config: Path, other_ca: tls.ClusterCA, serving: tuple[int, list[tls.NodeCertificate]]
) -> None:
    port, served = serving
    ca = _ca(config)
    served.append(_issue(ca))
    for name in (*NAMES, ADDRESS):
        assert _handshake(port, ca, name) == b"ok", name
    for wrong in ("test167", "test167.cluster.example", "10.86.255.167", "127.0.0.1"):
        with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
            _handshake(port, ca, wrong)
    served.append(_issue(other_ca))  # the right names, from another cluster's CA
    with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer"):
        _handshake(port, ca, NAMES[1])


def test_the_keystore_opens_with_its_password_only(config: Path, tmp_path: Path) -> None:
    cert = _issue(_ca(config))
    keystore = tmp_path / "node.p12"
    assert cert.keystore is not None
    keystore.write_bytes(cert.keystore)
    env = {**os.environ, "P": PASSWORD}
    opened = subprocess.run(
        ["openssl", "pkcs12", "-in", str(keystore), "-nodes", "-passin", "env:P"],
        capture_output=True,
        env=env,
        check=False,
    )
    assert opened.returncode == 0, opened.stderr
    text = opened.stdout.decode()
    assert cert.key_pem.strip().splitlines()[1] in text  # the node's key
    assert cert.cert_pem.strip() in text
    assert _ca(config).cert_pem.strip() in text  # and the chain
    for wrong in ("", "wrong", PASSWORD[:-1]):
        refused = subprocess.run(
            ["openssl", "pkcs12", "-in", str(keystore), "-nodes", "-passin", "env:P"],
            capture_output=True,
            env={**os.environ, "P": wrong},
            check=False,
        )
        assert refused.returncode != 0
        assert b"Mac verify error" in refused.stderr
    require_tool("keytool")  # openjdk-17-jre-headless, which ./run.sh installs
    # Java (what Marathon and Chronos run on) reads it, as a JKS-typed store too
    for store_type in ("PKCS12", "JKS"):
        listed = _keytool_list(keystore, store_type, env)
        assert listed.returncode == 0, listed.stdout + listed.stderr
        assert "test166.cluster.example, " in listed.stdout
        assert "PrivateKeyEntry" in listed.stdout
    wrong_password = _keytool_list(keystore, "PKCS12", {**os.environ, "P": "wrong"})
    assert wrong_password.returncode != 0
    assert "password was incorrect" in wrong_password.stdout + wrong_password.stderr


TRUST_CHECK = Path(__file__).resolve().parents[2] / "fixtures" / "java" / "TrustCheck.java"


def _java_trusts(keystore: Path, store_type: str, peer: Path) -> str:
    """What a JVM trusting a node's keystore (Marathon's leader proxy) says of a peer."""
    require_tool("java")  # the JDK runs the check from source (openjdk-17-jdk-headless)
    checked = subprocess.run(
        ["java", str(TRUST_CHECK), store_type, str(keystore), str(peer)],
        capture_output=True,
        text=True,
        env={**os.environ, "KP": PASSWORD},
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
    return checked.stdout.strip()


def test_a_nodes_keystore_trusts_its_peers_not_strangers(
    config: Path, other_ca: tls.ClusterCA, tmp_path: Path
) -> None:
    """A Marathon that does not lead proxies to the leader over HTTPS, trusting what its
    keystore trusts: the CA is a trusted entry of every node's keystore, so a peer's
    certificate from the cluster CA is trusted and another CA's is not (the JVM's own
    TrustManagerFactory, as PKCS12 and through the JKS type)."""
    ca = _ca(config)
    node = _issue(ca)
    keystore = tmp_path / "node.p12"
    assert node.keystore is not None
    keystore.write_bytes(node.keystore)
    peer = tls.issue_node_certificate(
        ca, names=["test167"], addresses=["10.86.255.167"], keystore_password=PASSWORD
    )
    stranger = tls.issue_node_certificate(
        other_ca, names=["test167"], addresses=["10.86.255.167"], keystore_password=PASSWORD
    )
    peer_file = _write(tmp_path / "peer", "node.crt", peer.cert_pem)
    stranger_file = _write(tmp_path / "stranger", "node.crt", stranger.cert_pem)
    for store_type in ("PKCS12", "JKS"):
        assert _java_trusts(keystore, store_type, peer_file) == "trusted"
        assert _java_trusts(keystore, store_type, stranger_file) == "refused"
    listed = _keytool_list(keystore, "PKCS12", {**os.environ, "P": PASSWORD})
    assert "cluster-ca, " in listed.stdout
    assert "trustedCertEntry" in listed.stdout
    # the node's keystore as openssl writes it, without the trusted entry: the peer is
    # refused (Java trusts trusted entries and a key entry's own certificate, not its chain)
    node_file = _write(tmp_path / "node", "node.crt", node.cert_pem)
    bare = tmp_path / "bare.p12"
    subprocess.run(
        [
            "openssl",
            "pkcs12",
            "-export",
            "-inkey",
            "/dev/stdin",
            "-in",
            str(node_file),
            "-certfile",
            str(ca.cert_path),
            "-passout",
            "env:KP",
            *tls.KEYSTORE_ALGORITHMS,
            "-out",
            str(bare),
        ],
        input=node.key_pem.encode(),
        env={**os.environ, "KP": PASSWORD},
        check=True,
        capture_output=True,
    )
    assert _java_trusts(bare, "PKCS12", peer_file) == "refused"


def test_a_tracked_ca_key_is_refused_a_tracked_certificate_is_not(config: Path) -> None:
    _git(config.parent, "add", str(config / "cluster-ca.crt"))
    assert _ca(config).cert_path.exists()  # the certificate is public
    _git(config.parent, "add", str(config / "cluster-ca.key"))
    with pytest.raises(UserError, match=r"cluster-ca.key: git tracks it") as caught:
        load_secrets(config)
    assert "echo cluster-ca.key >> .gitignore" in str(caught.value.hint)
    with pytest.raises(UserError, match=r"cluster-ca.key: git tracks it"):
        write_secrets(config, rotate=True)


def test_rotate_replaces_the_ca(config: Path, tmp_path: Path) -> None:
    before = _ca(config)
    old_cert, old_key = before.cert_pem, before.key_path.read_text()
    issued = _write(tmp_path, "node.crt", _issue(before).cert_pem)
    write_secrets(config, rotate=True)
    after = _ca(config)
    assert after.cert_pem != old_cert
    assert after.key_path.read_text() != old_key
    assert after.key_path.stat().st_mode & 0o777 == 0o600
    subject = _openssl("x509", "-in", str(after.cert_path), "-noout", "-subject").stdout
    assert subject != _openssl("x509", "-noout", "-subject", data=old_cert.encode()).stdout
    stale = _openssl("verify", "-CAfile", str(after.cert_path), str(issued))
    assert stale.returncode != 0  # a node seeded before the rotation no longer verifies
    fresh = _write(tmp_path / "fresh", "node.crt", _issue(after).cert_pem)
    assert _openssl("verify", "-CAfile", str(after.cert_path), str(fresh)).returncode == 0


@pytest.mark.parametrize(
    ("names", "addresses", "refused"),
    [
        (["test166,DNS:evil.example"], [ADDRESS], "test166,DNS:evil.example"),
        (["test166"], ["10.86.255.166,IP:1.2.3.4"], "not an IP address"),
        (["test 166"], [ADDRESS], "not a host name"),
        (["-test166"], [ADDRESS], "not a host name"),
        ([], [ADDRESS], "needs a host name"),
    ],
)
def test_a_value_that_would_smuggle_a_name_is_refused(
    config: Path, names: list[str], addresses: list[str], refused: str
) -> None:
    with pytest.raises(UserError, match=refused.replace(".", r"\.")):
        tls.issue_node_certificate(
            _ca(config), names=names, addresses=addresses, keystore_password=PASSWORD
        )


def _key_lines(*pems: str) -> list[str]:
    return [line for pem in pems for line in pem.splitlines() if not line.startswith("-----")]


def test_no_key_or_password_in_any_log_line_or_error(
    config: Path,
    other_ca: tls.ClusterCA,
    caplog: pytest.LogCaptureFixture,
    builder_cli: CliRun,
) -> None:
    caplog.set_level(logging.DEBUG)
    ca = _ca(config)
    cert = _issue(ca)
    # a CA whose key is another's: openssl refuses to sign, and says so in its own words
    shutil.copy(other_ca.key_path, ca.key_path)
    with pytest.raises(proc.ToolFailed) as failed:
        _issue(ca)
    assert failed.value.exit_code == 1
    assert "openssl failed with exit code 1" in failed.value.message
    shown = [*failed.value.lines(), failed.value.output]
    assert repr(cert).count("BEGIN") == 1  # the certificate shows, the key does not
    with pytest.raises(UserError) as refused:
        tls.issue_node_certificate(ca, names=["a,b"], addresses=[], keystore_password=PASSWORD)
    shown.append(str(refused.value))
    cli = builder_cli("--verbose", "--config", str(config), "secrets", "rotate")
    assert cli.returncode == 0, cli.stderr
    assert "openssl genpkey" in cli.stdout + cli.stderr  # the commands are logged ...
    shown.append(cli.stdout + cli.stderr)
    shown += [record.getMessage() for record in caplog.records]
    assert any("openssl pkcs12" in line for line in shown)
    keys = _key_lines(cert.key_pem, other_ca.key_path.read_text(), ca.key_path.read_text())
    keys += _key_lines(_ca(config).key_path.read_text())
    for text in shown:  # ... and nothing secret is
        assert "PRIVATE KEY" not in text
        assert PASSWORD not in text
        assert not any(line in text for line in keys)
    assert "PRIVATE KEY" not in repr(cert)
    assert str(cert.keystore) not in repr(cert)


def test_a_broken_ca_is_one_line_and_exit_2_with_nothing_written(
    config: Path, builder_cli: CliRun, tmp_path: Path
) -> None:
    """`builder seed` reads the secrets and the CA: a CA key others may read, or a CA cut
    in half, stops it with one located line before any seed is written."""
    out = tmp_path / "seeds"
    key = config / "cluster-ca.key"
    key.chmod(0o644)
    readable = builder_cli("--config", str(config), "seed", "--all", "--out", str(out))
    key.chmod(0o600)
    (config / "cluster-ca.crt").unlink()
    halved = builder_cli("--config", str(config), "seed", "--all", "--out", str(out))
    for result, line in (
        (readable, f"error: {key}: readable by others (mode 0644)"),
        (halved, f"error: {config / 'cluster-ca.crt'}: missing"),
    ):
        assert result.returncode == 2, result.stderr
        assert result.stderr.splitlines()[0].startswith(line)
        assert "Traceback" not in result.stderr
        assert not out.exists()


def _keytool_list(
    keystore: Path, store_type: str, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """Java's keytool listing the keystore, its password in the environment (P)."""
    command = ["keytool", "-list", "-storetype", store_type, "-keystore", str(keystore)]
    return subprocess.run(
        [*command, "-storepass:env", "P"], capture_output=True, text=True, env=env, check=False
    )
