"""`builder mirror`: the packages role sets install, as a pinned, checked local repository.

    DIR/Packages/*.rpm      every RPM the role sets install, dependencies included
    DIR/repodata/           createrepo_c metadata (gz) with the merged package groups
    DIR/mirror.lock.json    the lock: NEVRA, sha256, size and repository of every RPM

First run: resolve (dnf, against the configured repositories), fetch and check
every RPM, write the metadata, then the lock. Later runs keep to the lock: the
same RPMs, nothing fetched that is already there and right. `--update`
resolves again and reports what changed. `--check` compares a mirror with its
lock and changes nothing. Bad input (a repository that does not answer, a
package no repository has) stops before anything is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from builder import fsutil
from builder.config.load import LoadedConfig
from builder.config.roles import RoleSet
from builder.errors import UserError
from builder.mirror import repository
from builder.mirror.download import PACKAGES_DIR, Fetch, fetch_all
from builder.mirror.lock import LOCK_FILE, LockedRpm, MirrorLock, changes
from builder.mirror.resolve import PinnedPackage, install_specs, resolve, source_repos
from builder.mirror.signatures import keyrings
from builder.proc import redact


@dataclass
class MirrorResult:
    directory: Path
    lock: MirrorLock
    fetched: list[str]
    reused: list[str]
    bytes_fetched: int
    changes: list[str] = field(default_factory=list)


def make_mirror(
    loaded: LoadedConfig,
    role_sets: Sequence[RoleSet],
    directory: Path,
    update: bool = False,
    workers: int = 8,
) -> MirrorResult:
    repos = source_repos(loaded, role_sets)
    specs = install_specs(loaded, role_sets)
    lock_path = directory / LOCK_FILE
    previous = MirrorLock.read(lock_path) if lock_path.exists() else None
    wanted = tuple(roles.label for roles in role_sets)
    if previous is not None and not update and previous.specs != specs:
        raise UserError(
            f"{lock_path}: made for {', '.join(previous.roles)} ({len(previous.specs)} specs), "
            f"not for {', '.join(wanted)}",
            hint="add --update to resolve again and rewrite the lock",
        )
    pinned: list[tuple[PinnedPackage, str | None]]
    if previous is not None and not update:
        pinned = [(rpm.package, rpm.sha256) for rpm in previous.rpms]
        comps = _existing_comps(directory)
    else:
        resolution = resolve(repos, specs)
        pinned = [(package, None) for package in resolution.packages]
        comps = repository.merged_comps(resolution.comps)
    baseurls = {repo.name: repo.baseurl for repo in repos}
    for package, _ in pinned:
        if package.repo not in baseurls:
            raise UserError(
                f"{lock_path}: {package.nevra} comes from {package.repo}, "
                "which is not configured any more",
                hint="add --update",
            )
    fetches = [
        Fetch(package, baseurls[package.repo].rstrip("/") + "/" + package.location, sha256)
        for package, sha256 in pinned
    ]
    used = [repo for repo in repos if repo.name in {package.repo for package, _ in pinned}]
    with keyrings(used) as check:
        report = fetch_all(fetches, directory, check, workers)
    keep = {package.filename for package, _ in pinned}
    for stale in (directory / PACKAGES_DIR).glob("*.rpm"):
        if stale.name not in keep:
            stale.unlink()
    repository.write_metadata(directory, comps)
    lock = MirrorLock(
        roles=wanted,
        specs=specs,
        repos={repo.name: redact(repo.baseurl) for repo in used},
        rpms=tuple(LockedRpm(package, report.sha256[package.nevra]) for package, _ in pinned),
    )
    fsutil.write_file(lock_path, lock.to_json().encode())
    return MirrorResult(
        directory,
        lock,
        sorted(report.fetched),
        sorted(report.reused),
        report.bytes_fetched,
        changes(previous, lock) if previous is not None and update else [],
    )


def _existing_comps(directory: Path) -> bytes | None:
    path = directory / repository.COMPS_FILE
    return path.read_bytes() if path.is_file() else None


def check_mirror(directory: Path) -> list[str]:
    """What differs between a mirror and its lock: changed, missing and extra RPMs."""
    lock = MirrorLock.read(directory / LOCK_FILE)
    problems = []
    packages = directory / PACKAGES_DIR
    expected = {rpm.package.filename: rpm for rpm in lock.rpms}
    for name, rpm in sorted(expected.items()):
        path = packages / name
        if not path.is_file():
            problems.append(f"missing: {PACKAGES_DIR}/{name} ({rpm.package.nevra})")
        elif path.stat().st_size != rpm.package.size or fsutil.sha256_of(path) != rpm.sha256:
            problems.append(f"changed: {PACKAGES_DIR}/{name} (not the lock's sha256 {rpm.sha256})")
    present = {p.relative_to(directory) for p in directory.rglob("*.rpm") if p.is_file()}
    for extra in sorted(present - {Path(PACKAGES_DIR) / name for name in expected}):
        problems.append(f"extra: {extra} (not in the lock)")
    return problems
