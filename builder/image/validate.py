"""The ecosystem's own validators, run on freshly rendered output.

pykickstart's RHEL7 grammar (deprecation warnings are errors) and `packer
validate` through python-packer. Each returns Problems located by file and
line; an empty list means valid. (A seed's user-data: firstboot/validate.py.)
"""

from __future__ import annotations

import re
import tempfile
import warnings
from pathlib import Path

from builder.config.load import LoadedConfig
from builder.config.roles import RoleSet
from builder.errors import Problem
from builder.image import packer
from builder.image.sshkey import generate_build_key
from builder.render.kickstart import BUILD_KEY_COMMENT
from builder.render.packer_template import PackerVars
from builder.render.role import PACKER_TEMPLATE, PACKER_VARS, PROVISION, render_role


def validate_kickstart(text: str, shown: str) -> list[Problem]:
    """pykickstart with the RHEL7 handler: what CentOS 7's anaconda accepts."""
    from pykickstart.errors import KickstartError
    from pykickstart.parser import KickstartParser
    from pykickstart.version import RHEL7, makeVersion

    parser = KickstartParser(makeVersion(RHEL7), followIncludes=False)
    problems: list[Problem] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            parser.readKickstartFromString(text)
        except KickstartError as exc:
            line = getattr(exc, "lineno", None)
            message = str(getattr(exc, "value", "") or exc).strip().splitlines()[-1]
            problems.append(Problem(shown, line, "", f"kickstart (RHEL7): {message}"))
    for warning in caught:
        message = " ".join(str(warning.message).split())
        match = re.search(r"on line (\d+)", message)
        line = int(match.group(1)) if match else None
        problems.append(Problem(shown, line, "", f"kickstart (RHEL7) warning: {message}"))
    return problems


_PACKER_LOCATION = re.compile(r"on (?P<file>\S+) line (?P<line>\d+)")


def packer_problems(output: str, shown: str) -> list[Problem]:
    """Packer's `Error: ...` blocks as Problems, with the line it names."""
    problems = []
    for block in re.split(r"(?m)^Error: ", output)[1:]:
        lines = [line.strip() for line in block.splitlines() if line.strip()]
        where = _PACKER_LOCATION.search(block)
        detail = [
            line
            for line in lines[1:]
            if not _PACKER_LOCATION.search(line) and "source code not available" not in line
        ]
        message = " ".join([lines[0], *detail]) if lines else "packer validate failed"
        problems.append(
            Problem(shown, int(where.group("line")) if where else None, "", f"packer: {message}")
        )
    return problems


def validate_packer(
    render_dir: Path,
    shown: str | None = None,
    verify_command: str | None = None,
    mirror_directory: str | None = None,
) -> list[Problem]:
    """`packer validate` with the variables a build passes that have no default (and
    `verify_command` for a --verify template, `mirror_directory` for a --mirror AMI
    template), and a throwaway build key."""
    shown = shown or str(render_dir / PACKER_TEMPLATE)
    with tempfile.TemporaryDirectory(prefix="builder-validate-") as scratch:
        key = generate_build_key(Path(scratch))
        variables = PackerVars(
            http_directory=str(render_dir),
            provision_script=str(render_dir / PROVISION),
            ssh_private_key_file=str(key.private_key),
            verify_command=verify_command,
            mirror_directory=mirror_directory,
        )
        run = packer.validate(
            render_dir / PACKER_TEMPLATE, variables, var_file=render_dir / PACKER_VARS
        )
    if run.ok:
        return []
    return packer_problems(run.output, shown) or [
        Problem(shown, None, "", f"packer validate failed: {run.output.strip()[-500:]}")
    ]


def validate_role(
    loaded: LoadedConfig, roles: RoleSet, packer_version: tuple[int, int, int]
) -> list[Problem]:
    """Render a role set afresh and run every validator on what it produced."""
    rendered = render_role(
        loaded, roles, packer_version=packer_version, build_key=_sample_build_key()
    )
    problems = validate_kickstart(rendered.files["ks.cfg"], f"{roles.slug}/ks.cfg (build)")
    unattended = render_role(loaded, roles, packer_version=packer_version)
    problems += validate_kickstart(unattended.files["ks.cfg"], f"{roles.slug}/ks.cfg")
    with tempfile.TemporaryDirectory(prefix="builder-render-") as scratch:
        out = Path(scratch) / roles.slug
        unattended.write(out)
        problems += validate_packer(out, f"{roles.slug}/{PACKER_TEMPLATE}")
    return problems


def _sample_build_key() -> str:
    # The build renders its kickstart with a fresh key; any well-formed key
    # exercises the same lines for validation.
    return (
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGJ1aWxkZXItdmFsaWRhdGUtc2FtcGxlLWtleS0wMDA "
        + BUILD_KEY_COMMENT
    )
