"""The installer ISO's pure parts: boot-menu edits (golden pairs), labels, argv, kickstart.

Golden pairs as lorax' mkksiso keeps them: the stand-in's menus (modelled on
CentOS 7's) in, `tests/golden/iso/*.result` out. Regenerate with
    ./run.sh test tests/unit/test_iso.py --regen-golden
"""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.config.load import LoadedConfig
from builder.config.roles import compose
from builder.errors import UserError
from builder.image.validate import validate_kickstart
from builder.installer.offline_repo import missing_packages
from builder.installer.remaster import (
    edit_grub,
    edit_isolinux,
    escape_label,
    kickstart_argument,
    remaster_argv,
)
from builder.render.packer_template import LATEST_KNOWN_PACKER
from builder.render.role import KICKSTART, render_role
from tests.installer_media import STANDIN_FILES

GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "iso"
KS = kickstart_argument("CentOS 7 x86_64")
OFFLINE = "file:///run/install/repo/builder-repo"

# CentOS 7.9's own grub.cfg entry shape (linuxefi), as on the Minimal ISO
CENTOS_GRUB = """set default="1"
set timeout=60
menuentry 'Install CentOS 7' --class fedora --class gnu-linux --class gnu --class os {
\tlinuxefi /images/pxeboot/vmlinuz inst.stage2=hd:LABEL=CentOS\\x207\\x20x86_64 quiet
\tinitrdefi /images/pxeboot/initrd.img
}
menuentry 'Test this media & install CentOS 7' --class fedora --class gnu-linux {
\tlinuxefi /images/pxeboot/vmlinuz inst.stage2=hd:LABEL=CentOS\\x207\\x20x86_64 rd.live.check quiet
\tinitrdefi /images/pxeboot/initrd.img
}
"""


@pytest.mark.parametrize(
    ("name", "edit"), [("isolinux.cfg", edit_isolinux), ("grub.cfg", edit_grub)]
)
def test_menu_edits_match_golden(name: str, edit: object, request: pytest.FixtureRequest) -> None:
    edited = edit((STANDIN_FILES / name).read_text(), KS)  # type: ignore[operator]
    golden = GOLDEN / f"{name}.result"
    if request.config.getoption("--regen-golden"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(edited)
    assert golden.read_text() == edited


def test_isolinux_install_entry_is_the_only_default_with_a_short_timeout() -> None:
    edited = edit_isolinux((STANDIN_FILES / "isolinux.cfg").read_text(), KS)
    lines = edited.splitlines()
    assert lines.count("  menu default") == 1
    assert lines[lines.index("  menu default") - 1] == "label linux"
    assert "timeout 50" in lines
    assert "timeout 600" not in lines
    appends = [line for line in lines if "inst.stage2=" in line]
    assert len(appends) == 3
    assert all(line.endswith(" " + KS) for line in appends)


def test_grub_default_is_the_install_entry() -> None:
    edited = edit_grub(CENTOS_GRUB, KS)
    assert 'set default="0"' in edited
    assert "set timeout=5" in edited
    kernels = [line for line in edited.splitlines() if "linuxefi" in line]
    assert all(line.endswith(" " + KS) for line in kernels)


def test_editing_twice_replaces_the_old_kickstart() -> None:
    once = edit_grub(CENTOS_GRUB, KS)
    other = kickstart_argument("OTHER")
    twice = edit_grub(once, other)
    assert KS not in twice
    assert twice.count(other) == 2
    menu = edit_isolinux(edit_isolinux((STANDIN_FILES / "isolinux.cfg").read_text(), KS), KS)
    assert menu == edit_isolinux((STANDIN_FILES / "isolinux.cfg").read_text(), KS)


@pytest.mark.parametrize("edit", [edit_isolinux, edit_grub])
def test_a_menu_without_an_install_entry_is_refused(edit: object) -> None:
    text = "timeout 10\nlabel local\n  localboot 0xffff\nmenuentry 'x' {\n\tchainloader +1\n}\n"
    with pytest.raises(UserError, match="no install entry"):
        edit(text, KS)  # type: ignore[operator]


def test_label_escaping() -> None:
    assert escape_label("CentOS 7 x86_64") == "CentOS\\x207\\x20x86_64"
    assert escape_label("a:b") == "a\\x3ab"
    assert KS == "inst.ks=hd:LABEL=CentOS\\x207\\x20x86_64:/ks.cfg"


def test_remaster_argv_replays_the_boot_setup() -> None:
    files = {"/ks.cfg": Path("/w/ks.cfg"), "/images/efiboot.img": Path("/w/efiboot.img")}
    assert remaster_argv(Path("/src.iso"), Path("/out.iso"), files) == [
        "xorriso",
        "-stdio_sync",
        "off",
        "-indev",
        "/src.iso",
        "-outdev",
        "/out.iso",
        "-boot_image",
        "any",
        "replay",
        "-map",
        "/w/ks.cfg",
        "/ks.cfg",
        "-map",
        "/w/efiboot.img",
        "/images/efiboot.img",
    ]


def test_offline_kickstart_installs_from_the_media(loaded: LoadedConfig) -> None:
    roles = compose(loaded, ("master",))
    online = render_role(loaded, roles, packer_version=LATEST_KNOWN_PACKER).files[KICKSTART]
    offline = render_role(
        loaded, roles, packer_version=LATEST_KNOWN_PACKER, offline_repo=OFFLINE
    ).files[KICKSTART]
    assert "\ncdrom\n" in offline
    assert f"\nrepo --name=builder-offline --baseurl={OFFLINE}\n" in offline
    assert "url --url" not in offline
    assert "mesosphere" not in offline.split("%packages")[0]
    assert "url --url" in online
    assert "cdrom" not in online
    assert validate_kickstart(offline, "ks.cfg") == []


def test_offline_kickstart_url_is_quoted(loaded: LoadedConfig) -> None:
    roles = compose(loaded, ("slave",))
    with pytest.raises(ValueError, match="line break"):
        render_role(
            loaded, roles, packer_version=LATEST_KNOWN_PACKER, offline_repo="file:///x\n%pre"
        )


def test_missing_packages_ignores_groups() -> None:
    provided = frozenset({"mesos", "docker"})
    assert missing_packages(["@core", "mesos", "docker", "cloud-init"], provided) == ["cloud-init"]


def test_installing_entries_get_the_serial_console_once() -> None:
    """anaconda's output must reach the serial port (the build follows it there)."""
    for name, edit in (("isolinux.cfg", edit_isolinux), ("grub.cfg", edit_grub)):
        edited = edit((STANDIN_FILES / name).read_text(), KS)
        kernel_lines = [line for line in edited.splitlines() if "inst.stage2=" in line]
        assert kernel_lines
        for line in kernel_lines:
            assert line.split().count("console=ttyS0,115200n8") == 1, line
        again = edit(edited, KS)
        assert again.count("console=ttyS0") == edited.count("console=ttyS0")
    kept = edit_isolinux(
        "label linux\n  append initrd=i inst.stage2=hd:LABEL=X console=ttyS1,9600\n", KS
    )
    assert "console=ttyS1,9600 inst.ks=" in kept
    assert "ttyS0" not in kept
