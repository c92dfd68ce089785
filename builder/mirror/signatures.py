"""RPM signatures checked against each repository's configured GPG keys, by rpmkeys.

A repository with `gpgcheck: true` (the default) has its `gpgkey` files
imported into a scratch RPM database of its own; each of its RPMs must then
pass `rpmkeys --checksig` with "signatures OK": an unsigned RPM, one signed by
another key, or one changed after signing is refused, named. A repository with
`gpgcheck: false` is taken as it is (its RPMs' digests are still checked).
"""

from __future__ import annotations

import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from builder import proc
from builder.config.model import Repo
from builder.errors import UserError
from builder.mirror.download import RpmRefused, authorized_request
from builder.mirror.resolve import PinnedPackage

KEY_TIMEOUT = 30


class SignatureCheck:
    """Per repository, a keyring (an RPM database holding only its keys)."""

    def __init__(self, repos: Sequence[Repo], scratch: Path) -> None:
        self.checked = {repo.name: repo for repo in repos if repo.gpgcheck}
        self.dbpaths: dict[str, Path] = {}
        for name, repo in self.checked.items():
            dbpath = scratch / f"rpmdb-{name}"
            dbpath.mkdir(parents=True)
            for index, url in enumerate(repo.gpgkey):
                key = scratch / f"{name}-{index}.key"
                key.write_bytes(_read_key(repo, url))
                proc.run(["rpmkeys", "--dbpath", str(dbpath), "--import", str(key)])
            self.dbpaths[name] = dbpath

    def __call__(self, package: PinnedPackage, path: Path) -> None:
        dbpath = self.dbpaths.get(package.repo)
        if dbpath is None:
            return
        result = proc.run(
            ["rpmkeys", "--dbpath", str(dbpath), "--checksig", str(path)], check=False
        )
        verdict = result.stdout.strip().rpartition(": ")[2]
        if result.returncode != 0 or "signatures OK" not in verdict:
            path.unlink(missing_ok=True)
            if "signatures" not in verdict.lower():
                raise RpmRefused(
                    f"{package.filename}: not signed, and the {package.repo} repository has "
                    "gpgcheck on: refused"
                )
            shown = verdict or proc.last_error_line(result.output)
            raise RpmRefused(
                f"{package.filename}: its signature does not verify with the {package.repo} "
                f"repository's keys ({shown}): refused"
            )


def _read_key(repo: Repo, url: str) -> bytes:
    where = f"repository {repo.name}: gpgkey {proc.redact(url)}"
    if url.startswith("file://"):
        path = Path(url.removeprefix("file://"))
        try:
            return path.read_bytes()
        except OSError as exc:
            raise UserError(
                f"{where}: cannot read it on this machine ({exc.strerror}); point gpgkey at a "
                "copy of the key (a file:// path here, or an http(s):// URL)"
            ) from exc
    try:
        with urllib.request.urlopen(authorized_request(url), timeout=KEY_TIMEOUT) as response:  # noqa: S310
            data: bytes = response.read()
            return data
    except (urllib.error.URLError, OSError) as exc:
        raise UserError(f"{where}: cannot fetch it: {getattr(exc, 'reason', exc)}") from exc


@contextmanager
def keyrings(repos: Sequence[Repo]) -> Iterator[SignatureCheck]:
    """The signature check for `repos`, its keyrings removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="builder-keys-") as scratch:
        yield SignatureCheck(repos, Path(scratch))
