"""The role's provisioning script (provision.sh): packages, files, units, hygiene.

What the script leaves in the image (the role's files, the repo file, the
role marker, each stack unit's state) is computed here once: the template
writes it, and `builder verify` (builder/verify/contract.py) expects it.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from pathlib import PurePosixPath

import jinja2

from builder.config.cluster import IMAGE_FIREWALL_SERVICES
from builder.config.load import LoadedConfig
from builder.config.model import ManagedFile
from builder.config.roles import RoleSet
from builder.render.kickstart import BUILD_KEY_COMMENT

ROLES_FILE = "/etc/builder/roles"
YUM_REPO_FILE = "/etc/yum.repos.d/builder.repo"
# An AMI build with --mirror: where the mirror is copied in the instance, and the
# repository file that points at it while `install` runs (both removed after).
MIRROR_ON_INSTANCE = "/var/tmp/builder-mirror"
MIRROR_REPO_FILE = "/etc/yum.repos.d/builder-mirror.repo"


class BakedState(StrEnum):
    """A stack unit's state in the image, as `systemctl is-enabled` prints it."""

    DISABLED = "disabled"  # the image's own: first boot enables and starts it
    MASKED = "masked"  # no role of the image runs it, ever


def unit_states(stack_units: Iterable[str], services: Iterable[str]) -> dict[str, BakedState]:
    """Every stack unit and service, in that order: disabled if the image runs it, else masked."""
    runs = tuple(services)
    return {
        unit: BakedState.DISABLED if unit in runs else BakedState.MASKED
        for unit in dict.fromkeys((*stack_units, *runs))
    }


def yum_repo_file(roles: RoleSet, loaded: LoadedConfig) -> ManagedFile:
    sections = []
    for repo in (*loaded.config.os.repos, *roles.repos):
        lines = [
            f"[{repo.name}]",
            f"name={repo.description or repo.name}",
            f"baseurl={repo.baseurl}",
            "enabled=1",
            f"gpgcheck={int(repo.gpgcheck)}",
        ]
        if repo.gpgkey:
            lines.append("gpgkey=" + " ".join(repo.gpgkey))
        sections.append("\n".join(lines) + "\n")
    content = "# Written by builder from roles-config/.\n\n" + "\n".join(sections)
    return ManagedFile(path=YUM_REPO_FILE, content=content)


def roles_file(roles: RoleSet) -> ManagedFile:
    """The image's role marker: which role set it was built for."""
    return ManagedFile(path=ROLES_FILE, content=roles.label + "\n")


def role_files(roles: RoleSet) -> tuple[ManagedFile, ...]:
    """The role's own files, plus its sysctls as one sysctl.d file."""
    files = list(roles.files)
    if roles.sysctls:
        content = "".join(f"{key} = {value}\n" for key, value in roles.sysctls)
        files.append(
            ManagedFile(path=f"/etc/sysctl.d/90-builder-{roles.slug}.conf", content=content)
        )
    return tuple(sorted(files, key=lambda spec: spec.path))


def image_files(loaded: LoadedConfig, roles: RoleSet) -> tuple[ManagedFile, ...]:
    """Every file the script writes, by path."""
    files = (*role_files(roles), roles_file(roles), yum_repo_file(roles, loaded))
    return tuple(sorted(files, key=lambda spec: spec.path))


def provision_script(loaded: LoadedConfig, roles: RoleSet, env: jinja2.Environment) -> str:
    os_config = loaded.config.os
    admin = os_config.admin
    keys = "".join(f"{key}\n" for key in admin.ssh_authorized_keys)
    gpg_keys = dict.fromkeys(
        key for repo in (*os_config.repos, *roles.repos) for key in repo.gpgkey if repo.gpgcheck
    )
    states = unit_states(os_config.stack_units, roles.services)
    return env.get_template("provision.sh.j2").render(
        role_label=roles.label,
        repo_file=yum_repo_file(roles, loaded),
        repo_file_name=PurePosixPath(YUM_REPO_FILE).name,
        gpg_keys=list(gpg_keys),
        packages=[*os_config.base_packages, *roles.packages],
        files=role_files(roles),
        admin_name=admin.name,
        admin_home=f"/home/{admin.name}",
        admin_keys=keys,
        firewall_services=list(IMAGE_FIREWALL_SERVICES),
        disable_units=list(states),
        mask_units=[unit for unit, state in states.items() if state is BakedState.MASKED],
        roles_file=roles_file(roles),
        build_key_comment=BUILD_KEY_COMMENT,
        mirror_repo_file=MIRROR_REPO_FILE,
        # the mirror's RPMs are checked as strictly as the strictest of their sources
        mirror_gpgcheck=int(all(repo.gpgcheck for repo in (*os_config.repos, *roles.repos))),
    )
