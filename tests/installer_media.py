"""Small real inputs for the installer-ISO tests: a tiny CentOS-7-layout ISO, RPMs.

`tiny_installer_iso` lays out what the remaster reads (isolinux menu, the
UEFI grub.cfg, a FAT `images/efiboot.img` with its own grub.cfg, El Torito
BIOS and EFI entries, hybrid MBR/GPT) with the stand-in's menus and no
kernel: a second to build, so the bad-input and layout tests stay cheap.
`build_rpm` makes an empty RPM under a real package name with `rpmbuild`.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from builder.fsutil import sha256_of
from builder.image.build import QEMU_HOST_ADDRESS
from tests.conftest import REPO, require_tool
from tests.integration.rpmrepo import RpmRepos, write_config

STANDIN_FILES = REPO / "tests" / "fixtures" / "standin" / "files"
ISOLINUX = Path("/usr/lib/ISOLINUX")
VOLUME_ID = "CentOS 7 x86_64"


def checksum_option(path: Path) -> str:
    """The --iso-checksum value for a file."""
    return f"sha256:{sha256_of(path)}"


def _run(argv: Sequence[str]) -> None:
    subprocess.run(argv, check=True, capture_output=True, stdin=subprocess.DEVNULL)


def tiny_installer_iso(
    work: Path, *, omit: Sequence[str] = (), volume_id: str = VOLUME_ID, pad_mib: int = 0
) -> Path:
    """An ISO with CentOS 7's boot layout; `omit` drops tree paths (e.g. isolinux/isolinux.cfg)."""
    for tool in ("xorriso", "mformat", "mmd", "mcopy"):
        require_tool(tool)
    tree = work / "tree"
    shutil.rmtree(tree, ignore_errors=True)
    (tree / "isolinux").mkdir(parents=True)
    (tree / "EFI" / "BOOT").mkdir(parents=True)
    (tree / "images").mkdir()
    shutil.copy(ISOLINUX / "isolinux.bin", tree / "isolinux" / "isolinux.bin")
    shutil.copy(STANDIN_FILES / "isolinux.cfg", tree / "isolinux" / "isolinux.cfg")
    shutil.copy(STANDIN_FILES / "grub.cfg", tree / "EFI" / "BOOT" / "grub.cfg")
    efiboot = tree / "images" / "efiboot.img"
    _run(["mformat", "-C", "-i", str(efiboot), "-f", "1440", "-v", "ANACONDA", "::"])
    _run(["mmd", "-i", str(efiboot), "::/EFI", "::/EFI/BOOT"])
    _run(["mcopy", "-i", str(efiboot), str(STANDIN_FILES / "grub.cfg"), "::/EFI/BOOT/grub.cfg"])
    if pad_mib:
        with (tree / "padding.bin").open("wb") as handle:
            handle.truncate(pad_mib * 1024**2)
    for path in omit:
        (tree / path).unlink()
    iso = work / "tiny.iso"
    argv = ["xorriso", "-as", "mkisofs", "-quiet", "-o", str(iso), "-V", volume_id, "-r", "-J"]
    argv += ["-isohybrid-mbr", str(ISOLINUX / "isohdpfx.bin"), "-b", "isolinux/isolinux.bin"]
    argv += ["-c", "isolinux/boot.cat", "-no-emul-boot", "-boot-load-size", "4"]
    argv += ["-boot-info-table"]
    if "images/efiboot.img" not in omit:
        argv += ["-eltorito-alt-boot", "-e", "images/efiboot.img", "-no-emul-boot"]
        argv += ["-isohybrid-gpt-basdat"]
    _run([*argv, str(tree)])
    shutil.rmtree(tree)
    return iso


def build_rpm(
    out: Path, name: str, *, requires: Sequence[str] = (), provides: Sequence[str] = ()
) -> Path:
    """An empty noarch RPM `name-1.0-1.noarch.rpm` in `out`, built with rpmbuild."""
    require_tool("rpmbuild")
    top = out.parent / f".rpmbuild-{name}"
    (top / "SPECS").mkdir(parents=True, exist_ok=True)
    lines = [f"Name: {name}", "Version: 1.0", "Release: 1", "Summary: test stand-in of " + name]
    lines += ["License: MIT", "BuildArch: noarch"]
    lines += [f"Requires: {r}" for r in requires] + [f"Provides: {p}" for p in provides]
    lines += ["", "%description", f"A test stand-in under the real name {name}.", ""]
    lines += ["%files", ""]
    spec = top / "SPECS" / f"{name}.spec"
    spec.write_text("\n".join(lines))
    # gzip payloads, as CentOS 7's rpm reads (Debian's default is zstd)
    _run(
        [
            "rpmbuild",
            "-bb",
            "--define",
            f"_topdir {top}",
            "--define",
            "_binary_payload w9.gzdio",
            "--nodeps",
            str(spec),
        ]
    )
    built = top / "RPMS" / "noarch" / f"{name}-1.0-1.noarch.rpm"
    out.mkdir(parents=True, exist_ok=True)
    target = out / built.name
    shutil.move(str(built), target)
    shutil.rmtree(top)
    return target


def guest_config(directory: Path, rpmrepo: RpmRepos, urls: dict[str, str] | None = None) -> Path:
    """A config whose install tree and repositories are the stand-in repositories as a VM
    on QEMU's user network reaches them (the host's loopback is 10.0.2.2 there)."""
    guest = RpmRepos(rpmrepo.root, rpmrepo.base_url.replace("127.0.0.1", QEMU_HOST_ADDRESS))
    config = write_config(directory, guest, urls=urls)
    os_yaml = config / "os.yaml"
    text = os_yaml.read_text().replace(
        "http://vault.centos.org/7.9.2009/os/x86_64/", guest.url("signed", "os")
    )
    os_yaml.write_text(text)
    return config
