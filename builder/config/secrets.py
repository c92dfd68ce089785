"""The cluster's secrets: made once by `builder secrets init`, replaced by `rotate`.

They live in one file beside the config (`secrets.yaml` in the config directory),
only its owner may read it (0600), and git must not track it: builder refuses a
tracked or group/world-readable file rather than use it. The cluster's CA
(builder/config/tls.py) is made and replaced with them; its key lies beside them
under the same rules (`check_owner_only`), its certificate is public. Values are random
(`secrets.token_urlsafe`); none ever reaches an image, a manifest, a log, a
verify report or an error message: the only place they go is a node's seed,
as root-only files (builder/firstboot/seed.py), and the seed's files on the
host are written 0600. `Secrets` never shows its values in a repr.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from builder import proc
from builder.config import tls
from builder.errors import UserError
from builder.fsutil import write_file

SECRETS_FILE = "secrets.yaml"
# What each secret is for (issue 14: Mesos' agent and framework credentials,
# ZooKeeper's digest, the UIs' HTTP basic authentication).
SECRET_NAMES: Mapping[str, str] = {
    "agent_secret": "the Mesos agents authenticating to the masters",
    "marathon_secret": "Marathon's framework authenticating to the Mesos masters",
    "chronos_secret": "Chronos' framework authenticating to the Mesos masters",
    "zookeeper_password": "ZooKeeper digest authentication of Mesos",
    "marathon_zookeeper_password": "ZooKeeper digest authentication of Marathon",
    "http_password": "HTTP basic authentication of the Mesos, Marathon and Chronos APIs",
    "keystore_password": "the PKCS#12 keystores Marathon and Chronos serve HTTPS from",
}
# Names builder once made and no longer reads: a file holding one predates the change.
RETIRED_NAMES: Mapping[str, str] = {
    "mesos_secret": (
        "split into agent_secret, marathon_secret and chronos_secret (one per principal)"
    ),
}
# A value goes into zk URLs (`user:password@`), curl configs, flag files and launchers
# that split on `=` and spaces: only what `secrets.token_urlsafe` makes is taken.
SECRET_VALUE = re.compile(r"[A-Za-z0-9_-]{16,}")
ALLOWED_VALUES = "16 or more of A-Z, a-z, 0-9, _ and -"
# On a node: one root-only file per secret, written by first boot.
NODE_SECRETS_DIR = "/etc/builder/secrets"
SECRET_MODE = 0o600


@dataclass(frozen=True)
class Secrets:
    """The cluster's secret values by name, never printed, and its CA."""

    values: Mapping[str, str] = field(repr=False)
    ca: tls.ClusterCA | None = None

    def node_files(self, names: Iterable[str]) -> dict[str, str]:
        """path on the node -> content of the named secrets, for the seed (root-only files)."""
        return {f"{NODE_SECRETS_DIR}/{name}": f"{self.values[name]}\n" for name in names}


def secrets_path(config_dir: Path) -> Path:
    return config_dir / SECRETS_FILE


def _text(values: Mapping[str, str]) -> str:
    lines = ["# The cluster's secrets (builder secrets init|rotate). Never commit this file."]
    for name, value in values.items():
        lines += [f"# {SECRET_NAMES[name]}", f"{name}: {value}"]
    return "\n".join(lines) + "\n"


def generate() -> dict[str, str]:
    return {name: secrets.token_urlsafe(32) for name in SECRET_NAMES}


def write_secrets(config_dir: Path, *, rotate: bool) -> Path:
    """`init` (refused when the file exists) or `rotate` (refused when it does not)."""
    path = secrets_path(config_dir)
    if not config_dir.is_dir():
        raise UserError(f"{config_dir}: no config directory here", hint="builder init DIR")
    if path.exists() != rotate:
        if rotate:
            raise UserError(f"{path}: no secrets to rotate", hint="builder secrets init")
        raise UserError(f"{path}: exists", hint="builder secrets rotate replaces them")
    refuse_tracked(path)
    refuse_tracked(tls.ca_key_path(config_dir))
    ca = tls.make_ca()  # in memory: a failing openssl leaves nothing written
    try:
        tls.write_ca(config_dir, ca)
        write_file(path, _text(generate()).encode(), mode=SECRET_MODE)
        # the nodes' certificates were the old CA's, their keystores under the old password
        if tls.certificates_dir(config_dir).exists():
            shutil.rmtree(tls.certificates_dir(config_dir))
    except OSError as exc:
        raise UserError(f"{path.parent}: cannot write: {exc.strerror or exc}") from exc
    return path


def refuse_tracked(path: Path) -> None:
    """A secrets file that git tracks (or would commit with the next `git commit -a`)."""
    if shutil.which("git") is None:
        return
    found = proc.run(
        ["git", "-C", str(path.parent), "ls-files", "--error-unmatch", "--", path.name],
        check=False,
    )
    if found.returncode == 0:
        raise UserError(
            f"{path}: git tracks it; secrets must never be committed",
            hint=f"git rm --cached {path} && echo {path.name} >> .gitignore; "
            "then builder secrets rotate (the committed values are spent)",
        )


def check_owner_only(path: Path) -> None:
    """A file of secrets (secrets.yaml, the CA's key): refused when others may read it,
    another user owns it or git tracks it."""
    status = path.stat()
    mode = stat.S_IMODE(status.st_mode)
    if mode & 0o077:
        raise UserError(
            f"{path}: readable by others (mode {mode:04o})",
            hint=f"chmod 600 {path}; then builder secrets rotate",
        )
    if status.st_uid != os.getuid():
        raise UserError(f"{path}: not yours", hint="builder secrets rotate as its owner")
    refuse_tracked(path)


def load_secrets(config_dir: Path) -> Secrets | None:
    """The cluster's secrets and CA, or None when there is no secrets file."""
    path = secrets_path(config_dir)
    if not path.exists():
        return None
    check_owner_only(path)
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        name, colon, value = line.partition(": ")
        # the error names the line and the key, never the value
        if name in RETIRED_NAMES:
            raise UserError(
                f"{path}:{number}: {name}: no longer used: {RETIRED_NAMES[name]}",
                hint="builder secrets rotate makes them all (and a new CA)",
            )
        if not colon or name not in SECRET_NAMES or not value.strip():
            raise UserError(f"{path}:{number}: not a `name: value` line of a known secret")
        if not SECRET_VALUE.fullmatch(value.strip()):
            raise UserError(
                f"{path}:{number}: {name}: not a secret builder would make ({ALLOWED_VALUES})",
                hint="builder secrets rotate makes new ones",
            )
        values[name] = value.strip()
    missing = [name for name in SECRET_NAMES if name not in values]
    if missing:
        raise UserError(
            f"{path}: missing {', '.join(missing)}", hint="builder secrets rotate makes them all"
        )
    ca = tls.find_ca(config_dir)
    if ca is None:
        raise UserError(
            f"{tls.ca_key_path(config_dir)}: no cluster CA beside the secrets",
            hint="builder secrets rotate makes one (and new secrets)",
        )
    check_owner_only(ca.key_path)
    return Secrets(values, ca)
