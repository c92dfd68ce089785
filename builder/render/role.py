"""Rendering a role set into its kickstart, provisioning script and Packer template.

Templates are data (kickstart/, packer/); every value they use is computed in
this package. Same input, byte-identical output: no timestamps, sorted JSON,
fixed order. Outputs are written atomically: a temporary sibling directory,
renamed whole.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from builder.config.load import LoadedConfig
from builder.config.roles import RoleSet
from builder.fsutil import replace_tree
from builder.render.kickstart import check_build_key, kickstart
from builder.render.packer_template import PackerVars, TemplateForm, hcl_variables, modern_packer
from builder.render.provision import MIRROR_ON_INSTANCE, provision_script
from builder.render.templates import template_environment

KICKSTART = "ks.cfg"
PROVISION = "provision.sh"
PACKER_TEMPLATE = "build.pkr.hcl"
PACKER_VARS = "build.pkrvars.json"


@dataclass(frozen=True)
class RenderedRole:
    roles: RoleSet
    files: Mapping[str, str]
    modes: Mapping[str, int] = field(default_factory=dict)

    def write(self, out_dir: Path) -> None:
        replace_tree(out_dir, self.files, self.modes)


def render_role(
    loaded: LoadedConfig,
    roles: RoleSet,
    *,
    packer_version: tuple[int, int, int],
    build_key: str | None = None,
    offline_repo: str | None = None,
    verify: bool = False,
    mirror: bool = False,
) -> RenderedRole:
    """Everything a role set needs, as file name -> text.

    `offline_repo` (a baseurl, for the installer ISO): the kickstart installs
    from the installer's media (`cdrom`) and that one repository instead of
    the configured network repos. `verify`: the image specs run inside the
    build, after seal; `verify_command` is then a build-time variable.
    `mirror`: an AMI build copies the mirror (`mirror_directory`) into the
    instance and installs from it alone.
    """
    env = template_environment()
    if build_key is not None:
        check_build_key(build_key)
    provision = provision_script(loaded, roles, env)
    forms = frozenset(
        form
        for form, wanted in ((TemplateForm.VERIFY, verify), (TemplateForm.MIRROR, mirror))
        if wanted
    )
    template = env.get_template("build.pkr.hcl.j2").render(
        modern_packer=modern_packer(packer_version),
        verify=verify,
        mirror=mirror,
        mirror_on_instance=MIRROR_ON_INSTANCE,
        variable_blocks=hcl_variables(forms),
    )
    return RenderedRole(
        roles=roles,
        files={
            KICKSTART: kickstart(loaded, roles, env, provision, build_key, offline_repo),
            PROVISION: provision,
            PACKER_TEMPLATE: template,
            PACKER_VARS: PackerVars.from_config(loaded, roles).var_file(),
        },
        modes={PROVISION: 0o755},
    )
