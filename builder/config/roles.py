"""Role composition: `master,slave` is the union of both roles, nothing duplicated.

Roles are taken in the config's order (sorted role names), whatever order the
user wrote them in, so `slave,master` and `master,slave` are the same image.
Which networks reach which ports is the cluster's business (builder/config/cluster.py,
`ClusterFacts.zones`), not the image's. Two roles that disagree (the same file
with other content, the same repo id with another URL, the same sysctl with
another value) are a ConfigError naming both places.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from builder.config.cluster import start_order
from builder.config.load import LoadedConfig
from builder.config.model import ManagedFile, Node, Repo, Role
from builder.errors import ConfigError, Problem

H = TypeVar("H", bound=Hashable)
M = TypeVar("M", Repo, ManagedFile)


@dataclass(frozen=True)
class RoleSet:
    names: tuple[str, ...]
    repos: tuple[Repo, ...]
    packages: tuple[str, ...]
    services: tuple[str, ...]
    sysctls: tuple[tuple[str, str], ...]
    files: tuple[ManagedFile, ...]

    @property
    def label(self) -> str:
        """As users write it: master,slave."""
        return ",".join(self.names)

    @property
    def slug(self) -> str:
        """As directory and file names use it: master-slave."""
        return "-".join(self.names)


def parse_role_names(text: str, loaded: LoadedConfig) -> tuple[str, ...]:
    """`master`, `slave`, `master,slave` -> canonical order; unknown names are user errors."""
    wanted = [part.strip() for part in text.split(",")]
    known = list(loaded.config.roles)
    problems = [
        Problem("ROLE", None, "", f"unknown role {name!r} (roles are: {', '.join(known)})")
        for name in wanted
        if name not in known
    ]
    if problems or not wanted:
        raise ConfigError(problems or [Problem("ROLE", None, "", "no role given")])
    return tuple(name for name in known if name in wanted)


def node_roles(loaded: LoadedConfig, node: Node) -> RoleSet:
    """The role set a node's image is built from."""
    return compose(loaded, tuple(name for name in loaded.config.roles if name in node.roles))


def compose(loaded: LoadedConfig, names: tuple[str, ...]) -> RoleSet:
    roles = {name: loaded.config.roles[name] for name in names}
    problems: list[Problem] = []
    repos: tuple[Repo, ...] = _merge(loaded, roles, "repos", _repo_key, problems)
    files: tuple[ManagedFile, ...] = _merge(loaded, roles, "files", _file_key, problems)
    sysctl_owner: dict[str, tuple[str, str]] = {}
    for name, role in roles.items():
        for key, value in role.sysctls.items():
            if key in sysctl_owner and sysctl_owner[key][1] != value:
                first = sysctl_owner[key][0]
                problems.append(
                    loaded.problem(
                        f"roles.{name}",
                        ("sysctls", key),
                        f"roles {first} and {name} disagree on sysctl {key}",
                    )
                )
            sysctl_owner.setdefault(key, (name, value))
    if problems:
        raise ConfigError(problems)
    return RoleSet(
        names=names,
        repos=repos,
        packages=_unique(p for role in roles.values() for p in role.packages),
        services=start_order(roles.values()),
        sysctls=tuple(sorted((key, value) for key, (_, value) in sysctl_owner.items())),
        files=tuple(sorted(files, key=lambda spec: spec.path)),
    )


def _repo_key(repo: Repo) -> str:
    return repo.name


def _file_key(spec: ManagedFile) -> str:
    return spec.path


def _unique(items: Iterable[H]) -> tuple[H, ...]:
    return tuple(dict.fromkeys(items))


def _merge(
    loaded: LoadedConfig,
    roles: dict[str, Role],
    attribute: str,
    key_of: Callable[[M], str],
    problems: list[Problem],
) -> tuple[M, ...]:
    merged: dict[str, tuple[str, M]] = {}
    for name, role in roles.items():
        items: tuple[M, ...] = getattr(role, attribute)
        for index, item in enumerate(items):
            key = key_of(item)
            if key in merged and merged[key][1] != item:
                first = merged[key][0]
                problems.append(
                    loaded.problem(
                        f"roles.{name}",
                        (attribute, index),
                        f"roles {first} and {name} disagree on {attribute[:-1]} {key}",
                    )
                )
            merged.setdefault(key, (name, item))
    return tuple(item for _, item in merged.values())
