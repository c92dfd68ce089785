"""Before anything boots: can the role set's packages be had?

Without a mirror, every configured repository must answer and, together, hold
every package and group the role set installs with their dependencies (dnf
resolves them from the repositories' metadata; nothing is downloaded). With a
mirror, its lock must cover the role set and every locked RPM must be there.
Either way a problem is one line naming the repository, the package or the
file (exit 2), in seconds rather than after an installer's timeout.
"""

from __future__ import annotations

from pathlib import Path

from builder.config.load import LoadedConfig
from builder.config.roles import RoleSet
from builder.errors import UserError
from builder.mirror.download import PACKAGES_DIR
from builder.mirror.lock import LOCK_FILE, MirrorLock
from builder.mirror.resolve import install_specs, resolve, source_repos


def check_sources(loaded: LoadedConfig, roles: RoleSet, mirror: Path | None = None) -> str:
    """One line saying what was found; a UserError naming what is missing."""
    if mirror is not None:
        lock = check_mirror_covers(mirror, loaded, roles)
        return f"mirror {mirror}: {len(lock.rpms)} RPMs, lock {lock.digest[:16]}"
    repos = source_repos(loaded, [roles])
    resolution = resolve(repos, install_specs(loaded, [roles]))
    return f"{len(resolution.packages)} packages from {', '.join(r.name for r in repos)}"


def check_mirror_covers(mirror: Path, loaded: LoadedConfig, roles: RoleSet) -> MirrorLock:
    """The mirror's lock, when it was made for (at least) what `roles` install and every
    RPM it pins is in place (by size: `builder mirror --check` compares contents)."""
    lock = MirrorLock.read(mirror / LOCK_FILE)
    wanted = install_specs(loaded, [roles])
    missing = [spec for spec in wanted if spec not in lock.specs]
    if missing:
        raise UserError(
            f"{mirror}: its lock was made for {', '.join(lock.roles)}; it lacks "
            f"{', '.join(missing)}, which {roles.label} installs",
            hint=f"builder mirror {' '.join(dict.fromkeys([*lock.roles, roles.label]))} "
            f"--to {mirror} --update",
        )
    for rpm in lock.rpms:
        path = mirror / PACKAGES_DIR / rpm.package.filename
        if not path.is_file() or path.stat().st_size != rpm.package.size:
            raise UserError(
                f"{mirror}: {PACKAGES_DIR}/{rpm.package.filename} is missing or incomplete",
                hint=f"builder mirror {' '.join(lock.roles)} --to {mirror}",
            )
    if not (mirror / "repodata" / "repomd.xml").is_file():
        raise UserError(f"{mirror}: no repodata/repomd.xml: not a finished mirror")
    return lock
