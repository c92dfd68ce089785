"""Rendered output against golden files, byte for byte; determinism; atomic writes.

Regenerate the golden files after an intended change with:
    ./run.sh test tests/unit/test_render.py --regen-golden
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
from pathlib import Path

import pytest

from builder.config.load import LoadedConfig
from builder.config.roles import compose
from builder.render.packer_template import LATEST_KNOWN_PACKER, PackerVars, TemplateForm
from builder.render.role import (
    KICKSTART,
    PACKER_TEMPLATE,
    PACKER_VARS,
    PROVISION,
    RenderedRole,
    render_role,
)
from builder.render.templates import UnsafeValue

GOLDEN = Path(__file__).resolve().parents[2] / "golden"
ROLE_SETS = [("master",), ("slave",), ("master", "slave")]
PACKERS = {"packer-1.6": (1, 6, 6), "packer-current": LATEST_KNOWN_PACKER}
BUILD_KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGdvbGRlbi1maWxlLWJ1aWxkLWtleS0wMDAwMDAw builder-build-key"
)


def _render(loaded: LoadedConfig, names: tuple[str, ...], packer: str) -> RenderedRole:
    return render_role(loaded, compose(loaded, names), packer_version=PACKERS[packer])


@pytest.mark.parametrize("packer", list(PACKERS))
@pytest.mark.parametrize("names", ROLE_SETS, ids=["-".join(n) for n in ROLE_SETS])
def test_rendered_files_match_golden(
    loaded: LoadedConfig, names: tuple[str, ...], packer: str, request: pytest.FixtureRequest
) -> None:
    rendered = _render(loaded, names, packer)
    golden_dir = GOLDEN / packer / "-".join(names)
    if request.config.getoption("--regen-golden"):
        rendered.write(golden_dir)
    assert sorted(p.name for p in golden_dir.iterdir()) == sorted(rendered.files)
    for name, content in rendered.files.items():
        assert (golden_dir / name).read_text() == content, f"{golden_dir / name} drifted"


def test_build_kickstart_golden(loaded: LoadedConfig, request: pytest.FixtureRequest) -> None:
    rendered = render_role(
        loaded, compose(loaded, ("slave",)), packer_version=(1, 6, 6), build_key=BUILD_KEY
    )
    golden = GOLDEN / "build-ks" / "slave.ks.cfg"
    if request.config.getoption("--regen-golden"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(rendered.files[KICKSTART])
    assert golden.read_text() == rendered.files[KICKSTART]


def test_rendering_is_deterministic(loaded: LoadedConfig) -> None:
    first = _render(loaded, ("master", "slave"), "packer-1.6")
    second = _render(loaded, ("master", "slave"), "packer-1.6")
    assert first.files == second.files


def test_role_order_does_not_matter(loaded: LoadedConfig) -> None:
    assert compose(loaded, ("master", "slave")) == compose(loaded, ("master", "slave"))
    from builder.config.roles import parse_role_names

    assert parse_role_names("slave,master", loaded) == ("master", "slave")


def test_union_has_nothing_twice(loaded: LoadedConfig) -> None:
    both = compose(loaded, ("master", "slave"))
    assert both.packages.count("mesos") == 1
    assert [repo.name for repo in both.repos] == ["mesosphere", "mesosphere-noarch"]
    assert both.services == (
        "zookeeper",
        "mesos-master",
        "marathon",
        "chronos",
        "docker",
        "mesos-slave",
    )


def _embedded_script(kickstart: str) -> str:
    body = kickstart.split("<<'BUILDER_PROVISION'\n", 1)[1].split("\nBUILDER_PROVISION\n", 1)[0]
    return base64.b64decode("".join(body.split())).decode()


def test_kickstart_carries_the_provisioning_script_exactly(loaded: LoadedConfig) -> None:
    rendered = _render(loaded, ("slave",), "packer-1.6")
    assert _embedded_script(rendered.files[KICKSTART]) == rendered.files[PROVISION]


def test_unattended_kickstart_configures_and_seals(loaded: LoadedConfig) -> None:
    kickstart = _render(loaded, ("slave",), "packer-1.6").files[KICKSTART]
    assert "/root/builder-provision.sh configure\n/root/builder-provision.sh seal\n" in kickstart
    assert "\npoweroff\n" in kickstart
    assert "builder-build-key" not in kickstart


def test_build_kickstart_keeps_the_key_until_packer_seals(loaded: LoadedConfig) -> None:
    kickstart = render_role(
        loaded, compose(loaded, ("slave",)), packer_version=(1, 6, 6), build_key=BUILD_KEY
    ).files[KICKSTART]
    assert "/root/builder-provision.sh configure\n" in kickstart
    assert "/root/builder-provision.sh seal" not in kickstart
    assert "\nreboot\n" in kickstart
    assert f"printf '%s\\n' '{BUILD_KEY}' >> /root/.ssh/authorized_keys" in kickstart


@pytest.mark.parametrize(
    "key",
    [
        "ssh-ed25519 AAAA other-comment",
        "ssh-ed25519 AAAA builder-build-key\n%post",
        "ssh-ed25519 AAAA' builder-build-key",
    ],
)
def test_build_key_must_be_a_plain_build_key(loaded: LoadedConfig, key: str) -> None:
    with pytest.raises(UnsafeValue):
        render_role(loaded, compose(loaded, ("slave",)), packer_version=(1, 6, 6), build_key=key)


def test_provisioning_disables_every_stack_unit_and_masks_the_other_role(
    loaded: LoadedConfig,
) -> None:
    master = _render(loaded, ("master",), "packer-1.6").files[PROVISION]
    assert "for unit in zookeeper mesos-master mesos-slave marathon chronos docker; do" in master
    assert re.search(r"for unit in mesos-slave docker; do\n\s+systemctl mask", master)
    both = _render(loaded, ("master", "slave"), "packer-1.6").files[PROVISION]
    assert "systemctl mask" not in both


def test_packer_template_follows_the_packer_version(loaded: LoadedConfig) -> None:
    old = _render(loaded, ("slave",), "packer-1.6").files["build.pkr.hcl"]
    new = _render(loaded, ("slave",), "packer-current").files["build.pkr.hcl"]
    assert "required_plugins" not in old
    assert "imds_support" not in old
    assert "required_plugins" in new
    assert 'imds_support  = "v2.0"' in new


def test_write_replaces_the_directory_atomically(loaded: LoadedConfig, tmp_path: Path) -> None:
    out = tmp_path / "build" / "slave"
    out.mkdir(parents=True)
    (out / "stale.txt").write_text("from an older render")
    rendered = _render(loaded, ("slave",), "packer-1.6")
    rendered.write(out)
    assert sorted(p.name for p in out.iterdir()) == sorted(rendered.files)
    assert (out / PROVISION).stat().st_mode & 0o777 == 0o755
    assert [p.name for p in out.parent.iterdir()] == ["slave"], "no staging directory is left"


# ---- PackerVars: the one declaration of the template's variables ---------------------------
_VARIABLE_BLOCK = re.compile(r'(?m)^variable "(?P<name>\w+)" \{\n(?P<body>(?:  .*\n)*)\}$')


def declared_variables(template: str) -> dict[str, dict[str, str]]:
    """The `variable` blocks of rendered HCL: name -> attribute -> HCL text."""
    declared = {}
    for block in _VARIABLE_BLOCK.finditer(template):
        body = block.group("body").splitlines()
        attributes = dict(line.strip().split(" = ", 1) for line in body)
        declared[block.group("name")] = {k.strip(): v for k, v in attributes.items()}
    return declared


@pytest.mark.parametrize(("verify", "mirror"), [(False, False), (True, False), (False, True)])
@pytest.mark.parametrize("packer", list(PACKERS))
def test_the_templates_variables_are_the_fields_of_packer_vars(
    loaded: LoadedConfig, packer: str, verify: bool, mirror: bool
) -> None:
    rendered = render_role(
        loaded,
        compose(loaded, ("slave",)),
        packer_version=PACKERS[packer],
        verify=verify,
        mirror=mirror,
    )
    declared = declared_variables(rendered.files[PACKER_TEMPLATE])
    forms = {TemplateForm.VERIFY: verify, TemplateForm.MIRROR: mirror}
    expected = [
        var
        for var in dataclasses.fields(PackerVars)
        if var.metadata["form"] is None or forms[var.metadata["form"]]
    ]
    assert list(declared) == [var.name for var in expected]
    for var in expected:
        assert declared[var.name]["type"] == var.metadata["hcl"], var.name
        default = var.metadata["default"]
        assert declared[var.name].get("default") == (
            None if default is None else json.dumps(default)
        ), var.name
    # Every `var.X` the template uses is declared.
    used = set(re.findall(r"\bvar\.(\w+)", rendered.files[PACKER_TEMPLATE]))
    assert used <= set(declared)


def test_declared_variables_sees_a_block_written_by_hand(loaded: LoadedConfig) -> None:
    """The check above fails on a template that declares a variable PackerVars does not have."""
    rendered = render_role(loaded, compose(loaded, ("slave",)), packer_version=(1, 6, 6))
    extra = rendered.files[PACKER_TEMPLATE] + 'variable "extra" {\n  type = string\n}\n'
    names = [var.name for var in dataclasses.fields(PackerVars)]
    assert list(declared_variables(extra)) != [n for n in names if n != "verify_command"]
    assert list(declared_variables(extra))[-1] == "extra"


def test_the_var_file_is_what_roles_config_gives(loaded: LoadedConfig) -> None:
    roles = compose(loaded, ("master", "slave"))
    rendered = render_role(loaded, roles, packer_version=(1, 6, 6))
    values = json.loads(rendered.files[PACKER_VARS])
    assert values == PackerVars.from_config(loaded, roles).given()
    assert values["vm_name"] == "mesos-master-slave.qcow2"
    assert values["aws_source_ami_owners"] == list(loaded.config.os.aws.source_ami_owners)
    assert "http_directory" not in values  # a build-time value


def test_arguments_are_the_given_values_in_hcl_spelling() -> None:
    variables = PackerVars(headless=False, cpus=2, http_directory="/w/render")
    assert variables.arguments() == {
        "cpus": "2",
        "headless": "false",
        "http_directory": "/w/render",
    }
    assert PackerVars().arguments() == {}


@pytest.mark.parametrize("names", ROLE_SETS, ids=["-".join(n) for n in ROLE_SETS])
def test_kickstart_storage_suits_bios_and_uefi_and_never_prompts(
    loaded: LoadedConfig, names: tuple[str, ...]
) -> None:
    """One kickstart for both firmwares (RHEL 7 grammar): `reqpart` makes the EFI System
    Partition under UEFI and biosboot on GPT under BIOS, before the explicit partitions;
    `cmdline` makes anything that would prompt end the install instead."""
    from pykickstart.constants import DISPLAY_MODE_CMDLINE
    from pykickstart.parser import KickstartParser
    from pykickstart.version import RHEL7, makeVersion

    text = _render(loaded, names, "packer-1.6").files[KICKSTART]
    parser = KickstartParser(makeVersion(RHEL7), followIncludes=False)
    parser.readKickstartFromString(text)
    handler = parser.handler
    assert handler.displaymode.seen
    assert handler.displaymode.displayMode == DISPLAY_MODE_CMDLINE
    assert handler.reqpart.reqpart
    assert not handler.reqpart.addBoot
    assert handler.clearpart.initAll
    assert handler.zerombr.zerombr
    mounts = [part.mountpoint for part in handler.partition.partitions]
    assert mounts == ["/boot", "/"]  # the platform's own partition comes from reqpart
    assert handler.bootloader.location == "mbr"
    commands = [line.split()[0] for line in text.split("%packages")[0].splitlines() if line]
    assert commands.index("reqpart") < commands.index("part")
    assert "text" not in commands
    assert "autopart" not in commands
