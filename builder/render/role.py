"""Rendering a role set into its kickstart, provisioning script and Packer template.

Templates are data (kickstart/, packer/); every value they use is computed here.
Same input, byte-identical output: no timestamps, sorted JSON, fixed order.
Outputs are written atomically: a temporary sibling directory, renamed whole.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shlex
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from builder.config.load import LoadedConfig
from builder.config.model import ManagedFile
from builder.config.roles import RoleSet
from builder.fsutil import replace_tree
from builder.resources import resource_dir

KICKSTART = "ks.cfg"
PROVISION = "provision.sh"
PACKER_TEMPLATE = "build.pkr.hcl"
PACKER_VARS = "build.pkrvars.json"

BUILD_KEY_COMMENT = "builder-build-key"

# Packer 1.7 brought `packer init` and required_plugins; 1.6 rejects that block.
MODERN_PACKER = (1, 7, 0)
LATEST_KNOWN_PACKER = (1, 11, 2)


class UnsafeValue(ValueError):
    """A value that cannot be written safely where a template puts it."""


def shell_quote(value: object) -> str:
    text = str(value)
    if "\x00" in text:
        raise UnsafeValue(f"a NUL byte cannot be quoted for the shell: {text!r}")
    return shlex.quote(text)


def kickstart_quote(value: object) -> str:
    """One kickstart argument: pykickstart splits lines with shlex, so quote like it."""
    text = str(value)
    if any(ch in text for ch in "\n\r\x00"):
        raise UnsafeValue(f"a kickstart argument cannot hold a line break: {text!r}")
    return shlex.quote(text)


def template_environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(
            [str(resource_dir("kickstart")), str(resource_dir("packer"))]
        ),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,  # noqa: S701 - these are kickstarts, shell and HCL, not HTML
    )
    env.filters["sh"] = shell_quote
    env.filters["ks"] = kickstart_quote
    return env


@dataclass(frozen=True)
class RenderedRole:
    roles: RoleSet
    files: Mapping[str, str]
    modes: Mapping[str, int] = field(default_factory=dict)

    def write(self, out_dir: Path) -> None:
        replace_tree(out_dir, self.files, self.modes)


def modern_packer(version: tuple[int, int, int]) -> bool:
    return version >= MODERN_PACKER


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


def kickstart(
    loaded: LoadedConfig,
    roles: RoleSet,
    env: jinja2.Environment,
    provision: str,
    build_key: str | None,
    offline_repo: str | None = None,
) -> str:
    os_config = loaded.config.os
    encoded = base64.b64encode(provision.encode()).decode()
    install_repos = [
        repo
        for repo in (*os_config.repos, *roles.repos)
        if repo.baseurl.rstrip("/") != os_config.install.url.rstrip("/")
    ]
    return env.get_template("ks.cfg.j2").render(
        release=os_config.release,
        role_label=roles.label,
        install_url=os_config.install.url,
        install_repos=install_repos,
        locale=os_config.locale,
        keyboard=os_config.keyboard,
        timezone=os_config.timezone,
        firewall_ports=",".join(port.kickstart for port in roles.ports),
        selinux=os_config.selinux,
        root_password_hash=os_config.root_password_hash,
        admin_name=os_config.admin.name,
        admin_password_hash=os_config.admin.password_hash,
        kernel_args=" ".join(os_config.kernel_args),
        disk_device=os_config.disk.device,
        fstype=os_config.disk.fstype,
        boot_mb=os_config.disk.boot_mb,
        finish="reboot" if build_key else os_config.installer_finish,
        packages=[*os_config.base_packages, *roles.packages],
        provision_sha256=hashlib.sha256(provision.encode()).hexdigest(),
        provision_base64=textwrap.wrap(encoded, 76),
        post_steps=["configure"] if build_key else ["configure", "seal"],
        build_key=build_key,
        offline_repo=offline_repo,
    )


def packer_variables(loaded: LoadedConfig, roles: RoleSet) -> dict[str, Any]:
    """What the Packer template reads from roles-config/ (build.pkrvars.json)."""
    os_config = loaded.config.os
    aws = os_config.aws
    return {
        "role": roles.slug,
        "iso_url": os_config.install.iso_url,
        "iso_checksum": os_config.install.iso_checksum,
        "cpus": os_config.packer.cpus,
        "memory_mb": os_config.packer.memory_mb,
        "disk_size": f"{os_config.disk.size_gb}G",
        "boot_wait": os_config.packer.boot_wait,
        "ssh_timeout": os_config.packer.ssh_timeout,
        "vm_name": f"mesos-{roles.slug}.qcow2",
        "aws_region": aws.region,
        "aws_instance_type": aws.instance_type,
        "aws_source_ami_owners": list(aws.source_ami_owners),
        "aws_source_ami_name": aws.source_ami_name,
        "aws_ssh_username": aws.ssh_username,
        "aws_volume_size_gb": aws.volume_size_gb,
        "ami_name": f"mesos-{roles.slug}-centos-{os_config.release}",
    }


def check_build_key(key: str) -> str:
    parts = key.split()
    if len(parts) != 3 or parts[2] != BUILD_KEY_COMMENT or any(c in key for c in "\n\r'\"\\$`"):
        raise UnsafeValue(f"not a build key ending in {BUILD_KEY_COMMENT!r}: {key!r}")
    return key


def render_role(
    loaded: LoadedConfig,
    roles: RoleSet,
    *,
    packer_version: tuple[int, int, int],
    build_key: str | None = None,
    offline_repo: str | None = None,
    verify: bool = False,
) -> RenderedRole:
    """Everything a role set needs, as file name -> text.

    `offline_repo` (a baseurl, for the installer ISO): the kickstart installs
    from the installer's media (`cdrom`) and that one repository instead of
    the configured network repos. `verify`: the image specs run inside the
    build, after seal; `verify_command` is then a build-time variable.
    """
    env = template_environment()
    if build_key is not None:
        check_build_key(build_key)
    provision = provision_script(loaded, roles, env)
    template = env.get_template("build.pkr.hcl.j2").render(
        modern_packer=modern_packer(packer_version), verify=verify
    )
    variables = json.dumps(packer_variables(loaded, roles), indent=2, sort_keys=True) + "\n"
    return RenderedRole(
        roles=roles,
        files={
            KICKSTART: kickstart(loaded, roles, env, provision, build_key, offline_repo),
            PROVISION: provision,
            PACKER_TEMPLATE: template,
            PACKER_VARS: variables,
        },
        modes={PROVISION: 0o755},
    )
