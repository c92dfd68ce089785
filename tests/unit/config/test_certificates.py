"""Node certificates are issued once and kept beside the CA: a reseed gives the same seed,
a change of what a certificate was made for issues a new one, and a rotation drops them."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.config.certificates import node_certificate
from builder.config.secrets import Secrets, load_secrets, write_secrets
from builder.config.tls import NodeCertificate, issue_node_certificate, lapses_within
from builder.errors import UserError

PASSWORD = "a-keystore-password-0123456789"


@pytest.fixture
def config(config_copy: Path) -> Path:
    write_secrets(config_copy, rotate=False)
    return config_copy


def _secrets(config_dir: Path) -> Secrets:
    secrets = load_secrets(config_dir)
    assert secrets is not None
    return secrets


def _issue(secrets: Secrets, address: str = "10.86.255.166", issue: bool = True) -> object:
    return node_certificate(
        secrets,
        "test166",
        names=["test166"],
        addresses=[address],
        keystore_password=PASSWORD,
        issue=issue,
    )


def test_a_node_certificate_is_kept_and_reused(config: Path) -> None:
    secrets = _secrets(config)
    assert _issue(secrets, issue=False) is None  # verify never issues
    first = _issue(secrets)
    kept = config / "node-certificates"
    assert sorted(p.name for p in kept.iterdir()) == [
        "test166.crt",
        "test166.for",
        "test166.key",
        "test166.p12",
    ]
    assert {p.name: p.stat().st_mode & 0o777 for p in kept.iterdir()} == {
        "test166.crt": 0o644,
        "test166.for": 0o644,
        "test166.key": 0o600,
        "test166.p12": 0o600,
    }
    assert kept.stat().st_mode & 0o777 == 0o700
    assert _issue(secrets) == first
    assert _issue(secrets, issue=False) == first
    moved = _issue(secrets, "10.86.255.170")  # the node's address changed: a new one
    assert moved != first
    assert _issue(secrets, issue=False) is None  # the old address's is gone


def test_a_rotation_drops_the_kept_certificates(config: Path) -> None:
    first = _issue(_secrets(config))
    write_secrets(config, rotate=True)
    assert not (config / "node-certificates").exists()
    assert _issue(_secrets(config)) != first


def test_a_kept_key_others_may_read_is_refused(config: Path) -> None:
    secrets = _secrets(config)
    _issue(secrets)
    key = config / "node-certificates" / "test166.key"
    key.chmod(0o644)
    with pytest.raises(UserError, match="readable by others"):
        _issue(secrets)


def test_a_kept_keystore_others_may_read_is_refused(config: Path) -> None:
    secrets = _secrets(config)
    _issue(secrets)
    (config / "node-certificates" / "test166.p12").chmod(0o640)
    with pytest.raises(UserError, match="readable by others"):
        _issue(secrets)


def test_a_new_keystore_password_or_name_issues_anew(config: Path) -> None:
    """What a certificate was issued for is its `.for` digest: another keystore password
    (a rotated secret) or another name gets a new one, and a `.for` that does not match
    (edited, or left by an interrupted write) is not trusted."""
    secrets = _secrets(config)
    first = _issue(secrets)
    other = node_certificate(
        secrets,
        "test166",
        names=["test166"],
        addresses=["10.86.255.166"],
        keystore_password="another-keystore-password-0123",
        issue=False,
    )
    assert other is None
    renamed = node_certificate(
        secrets,
        "test166",
        names=["test166.mesos.example", "test166"],
        addresses=["10.86.255.166"],
        keystore_password=PASSWORD,
    )
    assert renamed != first
    assert renamed is not None
    assert renamed.names == ("test166.mesos.example", "test166")
    (config / "node-certificates" / "test166.for").write_text("0" * 64 + "\n")
    assert _issue(secrets, issue=False) is None


@pytest.mark.parametrize(("days", "renewed"), [(10, True), (31, False)])
def test_a_kept_certificate_about_to_lapse_is_renewed_by_a_seed(
    config: Path, days: int, renewed: bool
) -> None:
    """Kept as issued 825 days ago would be: `days` left. With under 30 left a seed issues a
    new one (valid 825 days); verify still expects the kept one, which the node holds."""
    secrets = _secrets(config)
    first = _issue(secrets)
    assert isinstance(first, NodeCertificate)
    assert secrets.ca is not None
    short = issue_node_certificate(
        secrets.ca,
        names=list(first.names),
        addresses=list(first.addresses),
        keystore_password=PASSWORD,
        days=days,
    )
    kept = config / "node-certificates"
    (kept / "test166.crt").write_text(short.cert_pem)
    (kept / "test166.key").write_text(short.key_pem)
    assert short.keystore is not None
    (kept / "test166.p12").write_bytes(short.keystore)
    assert _issue(secrets, issue=False) == short
    now = _issue(secrets)
    assert isinstance(now, NodeCertificate)
    assert (now != short) == renewed
    assert not lapses_within(now.cert_pem, 800 if renewed else days - 1)
    assert lapses_within(now.cert_pem, 826)
    assert (kept / "test166.crt").read_text() == now.cert_pem  # the renewal is kept


def _pem_only(secrets: Secrets, issue: bool = True) -> NodeCertificate | None:
    """An agent's executors' certificate: PEM files, no keystore."""
    return node_certificate(
        secrets,
        "test167+executor",
        names=["test167"],
        addresses=["10.86.255.167"],
        keystore_password=None,
        issue=issue,
    )


def test_a_certificate_without_a_keystore_is_kept_as_pem_files(config: Path) -> None:
    """No keystore is made or kept for it; asked with a keystore, it is issued anew with
    one, and asked without again, anew and the keystore removed."""
    secrets = _secrets(config)
    assert _pem_only(secrets, issue=False) is None
    first = _pem_only(secrets)
    assert first is not None
    assert first.keystore is None
    kept = config / "node-certificates"
    assert sorted(p.name for p in kept.iterdir()) == [
        "test167+executor.crt",
        "test167+executor.for",
        "test167+executor.key",
    ]
    assert (kept / "test167+executor.key").stat().st_mode & 0o777 == 0o600
    assert _pem_only(secrets) == first
    assert _pem_only(secrets, issue=False) == first
    with_keystore = node_certificate(
        secrets,
        "test167+executor",
        names=["test167"],
        addresses=["10.86.255.167"],
        keystore_password=PASSWORD,
    )
    assert with_keystore is not None
    assert with_keystore.keystore is not None
    assert with_keystore.cert_pem != first.cert_pem
    assert (kept / "test167+executor.p12").exists()
    again = _pem_only(secrets)
    assert again is not None
    assert again.cert_pem not in (first.cert_pem, with_keystore.cert_pem)
    assert not (kept / "test167+executor.p12").exists()
    assert _pem_only(secrets, issue=False) == again
