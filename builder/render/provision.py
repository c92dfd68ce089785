"""The role's provisioning script (provision.sh): packages, files, units, hygiene."""

from __future__ import annotations

import jinja2

from builder.config.load import LoadedConfig
from builder.config.model import ManagedFile
from builder.config.roles import RoleSet


def yum_repo_file(roles: RoleSet, loaded: LoadedConfig) -> str:
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
    return "# Written by builder from roles-config/.\n\n" + "\n".join(sections)


def role_files(roles: RoleSet) -> tuple[ManagedFile, ...]:
    """The role's own files, plus its sysctls as one sysctl.d file."""
    files = list(roles.files)
    if roles.sysctls:
        content = "".join(f"{key} = {value}\n" for key, value in roles.sysctls)
        files.append(
            ManagedFile(path=f"/etc/sysctl.d/90-builder-{roles.slug}.conf", content=content)
        )
    return tuple(sorted(files, key=lambda spec: spec.path))


def provision_script(loaded: LoadedConfig, roles: RoleSet, env: jinja2.Environment) -> str:
    os_config = loaded.config.os
    services = set(roles.services)
    admin = os_config.admin
    keys = "".join(f"{key}\n" for key in admin.ssh_authorized_keys)
    gpg_keys = dict.fromkeys(
        key for repo in (*os_config.repos, *roles.repos) for key in repo.gpgkey if repo.gpgcheck
    )
    return env.get_template("provision.sh.j2").render(
        role_label=roles.label,
        yum_repo_file=yum_repo_file(roles, loaded),
        gpg_keys=list(gpg_keys),
        packages=[*os_config.base_packages, *roles.packages],
        files=role_files(roles),
        admin_name=admin.name,
        admin_home=f"/home/{admin.name}",
        admin_keys=keys,
        ports=[port.firewalld for port in roles.ports],
        disable_units=list(dict.fromkeys((*os_config.stack_units, *roles.services))),
        mask_units=[unit for unit in os_config.stack_units if unit not in services],
        role_file=roles.label + "\n",
    )
