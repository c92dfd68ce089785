"""Node certificates, issued once per node and kept beside the cluster's CA.

A node's certificate, key and (where its Java services serve HTTPS) keystore are issued
by the cluster CA (builder/config/tls.py) the first time a seed needs them and kept in
`node-certificates/` in the config directory, under the same rules as the CA's key (its
owner's only, never tracked by git), under a name: the node's host name, or `HOST+executor`
for the certificate an agent's executors get (no host name has a '+'), which is issued by
the node's own executors' CA (`HOST+executor-ca`), not the cluster's. A later seed of the
same node takes the kept ones, so reseeding does not change a seed (its cloud-init
instance-id follows the content) and `builder verify` knows what each node holds. They are
issued again when what they were made for changes: the CA (`secrets rotate`), the node's
names or address, or the keystore password (or whether there is a keystore); and when the
kept certificate has less than RENEW_WITHIN_DAYS left, so a reseed renews it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from builder.config.secrets import Secrets, check_owner_only
from builder.config.tls import (
    CA_CERT_MODE,
    CA_KEY_MODE,
    RENEW_WITHIN_DAYS,
    ClusterCA,
    NodeCertificate,
    certificates_dir,
    checked_names,
    issue_node_certificate,
    lapses_within,
    make_ca,
    store_ca,
)
from builder.errors import UserError
from builder.fsutil import write_file

# What `verify` expects of a node's keystore when builder kept no certificate for it.
NOT_KEPT = "(no certificate kept for the node as the config now is: builder seed issues it)"
CERT_SUFFIX = ".crt"
KEY_SUFFIX = ".key"
KEYSTORE_SUFFIX = ".p12"
FOR_SUFFIX = ".for"  # what the kept files were issued for (a digest)
# An agent's executors' certificate, and the CA that issues it (no host name has a '+')
EXECUTOR_KEPT_AS = "{hostname}+executor"
EXECUTOR_CA_KEPT_AS = "{hostname}+executor-ca"
_SUFFIXES = (CERT_SUFFIX, KEY_SUFFIX, KEYSTORE_SUFFIX, FOR_SUFFIX)
_PEM_SUFFIXES = (CERT_SUFFIX, KEY_SUFFIX, FOR_SUFFIX)


def _issued_for(
    ca_pem: str, names: Sequence[str], addresses: Sequence[str], password: str | None
) -> str:
    """A digest of everything the certificate and keystore depend on (the password's
    share is hashed with the rest: the digest shows nothing of it)."""
    keystore = "\0" + password if password is not None else ""  # no keystore: as before
    text = "\0".join([ca_pem, ",".join(names), ",".join(addresses)]) + keystore
    return hashlib.sha256(text.encode()).hexdigest()


def _cluster_ca(secrets: Secrets) -> ClusterCA:
    if secrets.ca is None:
        raise UserError(
            "the cluster has no CA: a secured cluster's nodes need certificates",
            hint="builder secrets rotate makes new secrets and a CA",
        )
    return secrets.ca


def executor_ca(secrets: Secrets, hostname: str, *, issue: bool = True) -> ClusterCA | None:
    """The CA of one agent's executors' certificate: kept beside the node certificates (its
    key its owner's only), made the first time (`issue`; else None). Only that node's agent
    trusts it, so the executors' key, which every user of the node reads, poses as nobody
    to any other process of the cluster."""
    directory = certificates_dir(_cluster_ca(secrets).key_path.parent)
    name = EXECUTOR_CA_KEPT_AS.format(hostname=hostname)
    kept = ClusterCA(directory / f"{name}{KEY_SUFFIX}", directory / f"{name}{CERT_SUFFIX}")
    if kept.key_path.exists() and kept.cert_path.exists():
        check_owner_only(kept.key_path)
        return kept
    if not issue:
        return None
    directory.mkdir(mode=0o700, exist_ok=True)
    return store_ca(kept, make_ca(f"builder executors CA of {hostname}"))


def node_certificate(
    secrets: Secrets,
    kept_as: str,
    *,
    names: Sequence[str],
    addresses: Sequence[str],
    keystore_password: str | None,
    issue: bool = True,
    issuer: ClusterCA | None = None,
) -> NodeCertificate | None:
    """The certificate kept as `kept_as` when it was issued for exactly this (by `issuer`,
    the cluster CA unless given, with a keystore under `keystore_password`, or none); else
    a new one, kept (`issue`), or None (verify never issues: it reports the node's as not
    builder's)."""
    ca = issuer or _cluster_ca(secrets)
    dns, ips = checked_names(names, addresses)
    directory = certificates_dir(_cluster_ca(secrets).key_path.parent)
    suffixes = _SUFFIXES if keystore_password is not None else _PEM_SUFFIXES
    paths = {suffix: directory / f"{kept_as}{suffix}" for suffix in suffixes}
    private = [paths[suffix] for suffix in (KEY_SUFFIX, KEYSTORE_SUFFIX) if suffix in paths]
    wanted = _issued_for(ca.cert_pem, dns, ips, keystore_password)
    if all(path.exists() for path in paths.values()):
        for path in private:
            check_owner_only(path)
        if paths[FOR_SUFFIX].read_text(encoding="ascii").strip() == wanted:
            kept = NodeCertificate(
                tuple(dns),
                tuple(ips),
                paths[CERT_SUFFIX].read_text(encoding="ascii"),
                paths[KEY_SUFFIX].read_text(encoding="ascii"),
                paths[KEYSTORE_SUFFIX].read_bytes() if KEYSTORE_SUFFIX in paths else None,
            )
            # verify expects what the node holds; a seed renews one about to lapse
            if not issue or not lapses_within(kept.cert_pem, RENEW_WITHIN_DAYS):
                return kept
    if not issue:
        return None
    made = issue_node_certificate(ca, names=dns, addresses=ips, keystore_password=keystore_password)
    directory.mkdir(mode=0o700, exist_ok=True)
    write_file(paths[KEY_SUFFIX], made.key_pem.encode(), mode=CA_KEY_MODE)
    if made.keystore is not None:
        write_file(paths[KEYSTORE_SUFFIX], made.keystore, mode=CA_KEY_MODE)
    else:
        paths[KEYSTORE_SUFFIX] = directory / f"{kept_as}{KEYSTORE_SUFFIX}"
        paths[KEYSTORE_SUFFIX].unlink(missing_ok=True)  # one from when it had a keystore
    write_file(paths[CERT_SUFFIX], made.cert_pem.encode(), mode=CA_CERT_MODE)
    write_file(paths[FOR_SUFFIX], f"{wanted}\n".encode(), mode=CA_CERT_MODE)  # written last
    return made
