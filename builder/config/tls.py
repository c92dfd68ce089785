"""The cluster's certificate authority and the certificates it issues to nodes.

`builder secrets init` makes a CA per cluster (builder/config/secrets.py writes it
with the secrets and replaces it on `rotate`): its key and certificate live beside
`secrets.yaml` in the config directory, the key under the same rules as the secrets
(its owner's only, never tracked by git: secrets.py checks both files the same way).
At seed time each node gets a certificate for its host name, FQDN and inventory
address, signed by that CA, as PEM (Mesos' libprocess reads PEM files) and as a
PKCS#12 keystore (Marathon and Chronos, Java 8, read keystores).

Everything runs through the `openssl` CLI (builder/proc.py logs each command):
keys travel on stdin and stdout, the keystore password in the environment, so no
command line, log line or error message carries key material. Nothing is written
but where the caller says: `issue_node_certificate` returns the node's files in
memory; `write_ca` writes the CA where the secrets live.

RSA 2048 keys, SHA-256 signatures: libprocess' default cipher list
(`LIBPROCESS_SSL_CIPHERS`, Mesos 1.11) has only RSA and DSS suites, and Java 8 and
EL7's OpenSSL 1.0.2 take RSA everywhere.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from builder import proc
from builder.errors import UserError
from builder.fsutil import write_file

CA_KEY_FILE = "cluster-ca.key"
CA_CERT_FILE = "cluster-ca.crt"
# The node certificates builder issued and keeps (builder/config/certificates.py); a new
# CA (`secrets rotate`) removes them.
CERTIFICATES_DIR = "node-certificates"
CA_KEY_MODE = 0o600
CA_CERT_MODE = 0o644  # the certificate is public: nodes, browsers and verify trust it
CA_VALIDITY_DAYS = 3650
# A node's certificate lasts a little over two years (825 days, the longest a
# browser accepted for a server certificate until 2020). A seed takes the kept one
# (builder/config/certificates.py) until less than RENEW_WITHIN_DAYS of it are left, then
# issues a new one: reseeding the node renews it.
NODE_VALIDITY_DAYS = 825
RENEW_WITHIN_DAYS = 30
RSA_BITS = 2048
# The keystore's password reaches openssl in this environment variable, never argv.
KEYSTORE_PASS_ENV = "BUILDER_KEYSTORE_PASS"  # noqa: S105 (a variable name)
# Algorithms every Java 8 reads in a PKCS#12 file (OpenSSL 3's default, AES-256 with
# PBKDF2, needs Java 8u301 or later).
KEYSTORE_ALGORITHMS = ("-keypbe", "PBE-SHA1-3DES", "-certpbe", "PBE-SHA1-3DES", "-macalg", "sha1")
# The CA as a trusted entry of the keystore: a Marathon that does not lead proxies API
# calls to the leader over HTTPS trusting what its keystore trusts, and Java trusts only
# a keystore's trusted-certificate entries, which OpenSSL before 3.2 cannot write. keytool
# writes it, with the same algorithms pinned (the JDK's own defaults need Java 8u301+).
CA_TRUST_ALIAS = "cluster-ca"
KEYTOOL_PKCS12_ALGORITHMS = (
    "-J-Dkeystore.pkcs12.certProtectionAlgorithm=PBEWithSHA1AndDESede",
    "-J-Dkeystore.pkcs12.keyProtectionAlgorithm=PBEWithSHA1AndDESede",
    "-J-Dkeystore.pkcs12.macAlgorithm=HmacPBESHA1",
)
# openssl's own config file could add extensions (Debian's adds v3_ca to `req -x509`):
# none is read, every extension is named here.
NO_CONFIG = ("-config", "/dev/null")
# A certificate for the key on stdin (the CA's self-signed, or a node's signed by the CA).
CERTIFY_KEY_ON_STDIN = ("req", "-x509", "-new", *NO_CONFIG, "-key", "/dev/stdin")
CA_EXTENSIONS = (
    "basicConstraints=critical,CA:TRUE,pathlen:0",
    "keyUsage=critical,keyCertSign,cRLSign",
    "subjectKeyIdentifier=hash",
)
NODE_EXTENSIONS = (
    "basicConstraints=critical,CA:FALSE",
    "keyUsage=critical,digitalSignature,keyEncipherment",
    # clientAuth too: a libprocess that requires client certificates gets this one
    "extendedKeyUsage=serverAuth,clientAuth",
    "subjectKeyIdentifier=hash",
    "authorityKeyIdentifier=keyid",
)
_DNS_NAME = re.compile(
    r"(?i)^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$"
)


@dataclass(frozen=True)
class CAMaterial:
    """A new CA in memory, before `write_ca` puts it beside the secrets."""

    key_pem: str = field(repr=False)
    cert_pem: str


@dataclass(frozen=True)
class ClusterCA:
    """The cluster's CA as it lies in the config directory."""

    key_path: Path
    cert_path: Path

    @property
    def cert_pem(self) -> str:
        return self.cert_path.read_text(encoding="ascii")


@dataclass(frozen=True)
class NodeCertificate:
    """A node's certificate and key (PEM) and, for a node whose Java services serve HTTPS,
    the same as a PKCS#12 keystore (with the CA's certificate, alias the first name);
    key and keystore never shown."""

    names: tuple[str, ...]
    addresses: tuple[str, ...]
    cert_pem: str
    key_pem: str = field(repr=False)
    keystore: bytes | None = field(default=None, repr=False)


def certificates_dir(config_dir: Path) -> Path:
    return config_dir / CERTIFICATES_DIR


def ca_key_path(config_dir: Path) -> Path:
    return config_dir / CA_KEY_FILE


def ca_cert_path(config_dir: Path) -> Path:
    return config_dir / CA_CERT_FILE


def _openssl(
    argv: Sequence[str],
    *,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
    binary: bool = False,
) -> proc.Result:
    """openssl, failing with its own stderr only: stdout may hold a key."""
    result = proc.run(
        ["openssl", *argv], check=False, input_text=stdin, env=env, binary_output=binary
    )
    if result.returncode != 0:
        raise proc.ToolFailed(
            proc.command_line(["openssl", *argv]), result.returncode, proc.redact(result.stderr)
        )
    return result


def lapses_within(cert_pem: str, days: int) -> bool:
    """Whether the certificate is no longer valid `days` from now (`openssl x509
    -checkend`, which also says so of a certificate it cannot read)."""
    checked = proc.run(
        ["openssl", "x509", "-noout", "-checkend", str(days * 86400)],
        check=False,
        input_text=cert_pem,
    )
    return checked.returncode != 0


def _new_key() -> str:
    return _openssl(
        ["genpkey", "-algorithm", "RSA", "-pkeyopt", f"rsa_keygen_bits:{RSA_BITS}"]
    ).stdout


def _serial() -> str:
    """A random positive serial (RFC 5280: at most 20 octets)."""
    return f"0x{secrets.randbits(127):x}"


def _extensions(extensions: Sequence[str]) -> list[str]:
    return [arg for extension in extensions for arg in ("-addext", extension)]


def make_ca(name: str = "builder cluster CA") -> CAMaterial:
    """A new self-signed CA, in memory. Its name carries a random id, so a rotated CA
    never shares a subject with the one it replaces."""
    subject = f"/CN={name} {secrets.token_hex(4)}"
    key = _new_key()
    cert = _openssl(
        [
            *CERTIFY_KEY_ON_STDIN,
            "-subj",
            subject,
            "-days",
            str(CA_VALIDITY_DAYS),
            "-sha256",
            "-set_serial",
            _serial(),
            *_extensions(CA_EXTENSIONS),
        ],
        stdin=key,
    ).stdout
    return CAMaterial(key, cert)


def write_ca(config_dir: Path, material: CAMaterial) -> ClusterCA:
    """The CA beside the secrets: the key its owner's only, the certificate public."""
    return store_ca(ClusterCA(ca_key_path(config_dir), ca_cert_path(config_dir)), material)


def store_ca(ca: ClusterCA, material: CAMaterial) -> ClusterCA:
    """A CA's files where `ca` says: the key its owner's only, the certificate public."""
    write_file(ca.key_path, material.key_pem.encode(), mode=CA_KEY_MODE)
    write_file(ca.cert_path, material.cert_pem.encode(), mode=CA_CERT_MODE)
    return ca


def find_ca(config_dir: Path) -> ClusterCA | None:
    """The CA's files, or None when there are none; one without the other is an error.
    (secrets.py checks the key's mode, owner and git status before it is used.)"""
    ca = ClusterCA(ca_key_path(config_dir), ca_cert_path(config_dir))
    present = [path.exists() for path in (ca.key_path, ca.cert_path)]
    if not any(present):
        return None
    if not all(present):
        missing = ca.cert_path if present[0] else ca.key_path
        raise UserError(
            f"{missing}: missing (the cluster CA needs its key and its certificate)",
            hint="builder secrets rotate makes a new CA with new secrets",
        )
    return ca


def checked_names(names: Sequence[str], addresses: Sequence[str]) -> tuple[list[str], list[str]]:
    """Host names and IP addresses as a certificate carries them, each once; a value that
    is neither (a comma would add a name to the list openssl reads) is refused."""
    for name in names:
        if not _DNS_NAME.match(name):
            raise UserError(f"{name!r}: not a host name a certificate can carry")
    shown = []
    for address in addresses:
        try:
            shown.append(str(ipaddress.ip_address(address)))
        except ValueError:
            raise UserError(f"{address!r}: not an IP address") from None
    if not names:
        raise UserError("a node certificate needs a host name")
    return list(dict.fromkeys(n.lower() for n in names)), list(dict.fromkeys(shown))


def issue_node_certificate(
    ca: ClusterCA,
    *,
    names: Sequence[str],
    addresses: Sequence[str],
    keystore_password: str | None,
    days: int = NODE_VALIDITY_DAYS,
) -> NodeCertificate:
    """A certificate for a node's names and addresses (its subject: the first name),
    signed by the cluster CA, and its keystore under `keystore_password` (None: no
    keystore, for PEM files only); in memory only."""
    dns, ips = checked_names(names, addresses)
    san = ",".join([*(f"DNS:{n}" for n in dns), *(f"IP:{a}" for a in ips)])
    key = _new_key()
    cert = _openssl(
        [
            *CERTIFY_KEY_ON_STDIN,
            "-subj",
            f"/CN={dns[0]}",
            "-CA",
            str(ca.cert_path),
            "-CAkey",
            str(ca.key_path),
            "-days",
            str(days),
            "-sha256",
            "-set_serial",
            _serial(),
            *_extensions((*NODE_EXTENSIONS, f"subjectAltName={san}")),
        ],
        stdin=key,
    ).stdout
    if keystore_password is None:
        return NodeCertificate(tuple(dns), tuple(ips), cert, key)
    # pkcs12 reads -in twice (key, then certificates), so the public certificate comes
    # from a file and the key from stdin.
    with tempfile.TemporaryDirectory(prefix="builder-cert-") as scratch:
        cert_file = Path(scratch) / "node.crt"
        cert_file.write_text(cert, encoding="ascii")
        keystore_file = Path(scratch) / "node.p12"
        keystore_file.touch(mode=0o600)
        keystore_file.write_bytes(
            _openssl(
                [
                    "pkcs12",
                    "-export",
                    "-inkey",
                    "/dev/stdin",
                    "-in",
                    str(cert_file),
                    "-certfile",
                    str(ca.cert_path),
                    "-name",
                    dns[0],
                    "-passout",
                    f"env:{KEYSTORE_PASS_ENV}",
                    *KEYSTORE_ALGORITHMS,
                ],
                stdin=key,
                env={KEYSTORE_PASS_ENV: keystore_password},
                binary=True,
            ).data
        )
        trust_ca(keystore_file, ca, keystore_password)
        keystore = keystore_file.read_bytes()
    return NodeCertificate(tuple(dns), tuple(ips), cert, key, keystore)


def trust_ca(keystore: Path, ca: ClusterCA, keystore_password: str) -> None:
    """Add the CA's certificate to the keystore as a trusted entry (Java's keytool)."""
    argv = [
        "keytool",
        *KEYTOOL_PKCS12_ALGORITHMS,
        "-importcert",
        "-noprompt",
        "-alias",
        CA_TRUST_ALIAS,
        "-file",
        str(ca.cert_path),
        "-keystore",
        str(keystore),
        "-storetype",
        "PKCS12",
        "-storepass:env",
        KEYSTORE_PASS_ENV,
    ]
    proc.run(argv, env={KEYSTORE_PASS_ENV: keystore_password})
