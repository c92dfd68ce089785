"""The role's kickstart (ks.cfg): the install, with provision.sh carried in %post."""

from __future__ import annotations

import base64
import hashlib
import textwrap

import jinja2

from builder.config.cluster import IMAGE_FIREWALL_SERVICES
from builder.config.load import LoadedConfig
from builder.config.roles import RoleSet
from builder.render.templates import UnsafeValue

BUILD_KEY_COMMENT = "builder-build-key"


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
        firewall_services=",".join(IMAGE_FIREWALL_SERVICES),
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


def check_build_key(key: str) -> str:
    parts = key.split()
    if len(parts) != 3 or parts[2] != BUILD_KEY_COMMENT or any(c in key for c in "\n\r'\"\\$`"):
        raise UnsafeValue(f"not a build key ending in {BUILD_KEY_COMMENT!r}: {key!r}")
    return key
