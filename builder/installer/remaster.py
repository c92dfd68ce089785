"""The unattended installer ISO: CentOS 7's ISO remastered with the role's kickstart.

xorriso loads the source ISO and replays its boot setup (`-boot_image any
replay`: El Torito BIOS and EFI entries, the hybrid MBR/GPT for `dd` to a USB
stick), and maps in the few changed files: the kickstart at `/ks.cfg`, the
BIOS menu (`isolinux/isolinux.cfg`), the UEFI menu (`EFI/BOOT/grub.cfg`, a
copy) and `images/efiboot.img` with its own `EFI/BOOT/grub.cfg` edited by
mtools (no root, no mount). Every installing entry gets
`inst.ks=hd:LABEL=<volume id>:/ks.cfg` (and `console=tty0 console=ttyS0,115200n8`
when it names no serial console: anaconda's output on the serial port); the
plain install entry becomes the default with a short timeout. The volume id
stays the source's: the installer finds its media by that label.
`implantisomd5` then implants the media checksum, and only then is the file renamed into place.

With an offline repository the RPMs go to `/builder-repo/` with createrepo_c
metadata, and the kickstart installs from the media (`cdrom`) plus
`repo --baseurl=file:///run/install/repo/builder-repo`: CentOS 7's installer
mounts its stage2 media at /run/install/repo.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from builder import fsutil, proc
from builder.config.load import LoadedConfig
from builder.config.roles import RoleSet
from builder.errors import UserError
from builder.installer import offline_repo, source_iso
from builder.mirror.download import PACKAGES_DIR
from builder.mirror.preflight import check_mirror_covers
from builder.render.packer_template import LATEST_KNOWN_PACKER
from builder.render.role import KICKSTART, render_role

KICKSTART_PATH = "/ks.cfg"
ISOLINUX_CFG = "/isolinux/isolinux.cfg"
GRUB_CFG = "/EFI/BOOT/grub.cfg"
EFIBOOT_IMG = "/images/efiboot.img"
EFIBOOT_GRUB_CFG = "::/EFI/BOOT/grub.cfg"
REPO_ON_MEDIA = "builder-repo"
MEDIA_MOUNT = "/run/install/repo"  # where CentOS 7's installer mounts its media
ISOLINUX_TIMEOUT = "50"  # tenths of a second
GRUB_TIMEOUT = "5"  # seconds
ISO_MAGIC_OFFSET = 32769  # "CD001" of the primary volume descriptor
SPARE_BYTES = 64 * 1024**2
_LABEL_SAFE = re.compile(r"[A-Za-z0-9_.-]")
_KS_WORD = re.compile(r"\s(inst\.)?ks=\S*")
# The installer's output on the serial port as well as the screen: the last
# console= is the one anaconda's text (cmdline mode) goes to.
SERIAL_CONSOLE = ("console=tty0", "console=ttyS0,115200n8")


@dataclass(frozen=True)
class IsoOptions:
    iso: str | None = None
    iso_checksum: str | None = None
    output: Path = Path("output")
    repo_dir: Path | None = None  # a directory of RPMs (metadata made here)
    mirror: Path | None = None  # a mirror made by `builder mirror` (carried as it is)


@dataclass(frozen=True)
class SourceLayout:
    """What the remaster reads from the source ISO."""

    volume_id: str
    isolinux_cfg: str
    grub_cfg: str
    efiboot_img: Path  # an extracted, writable copy
    efiboot_grub_cfg: str
    media_repodata: Path | None  # the media's own repodata/, when it has one


def installer_path(output: Path, roles: RoleSet) -> Path:
    return output / roles.slug / f"{roles.slug}-installer.iso"


def escape_label(volume_id: str) -> str:
    """A volume id as a `LABEL=` on the kernel command line (space -> \\x20)."""
    return "".join(c if _LABEL_SAFE.match(c) else f"\\x{ord(c):02x}" for c in volume_id)


def kickstart_argument(volume_id: str) -> str:
    return f"inst.ks=hd:LABEL={escape_label(volume_id)}:{KICKSTART_PATH}"


def _with_kickstart(line: str, ks_arg: str) -> str:
    """A kernel line with any old ks= replaced by ks_arg, at its end, and the serial
    console added when the line names none."""
    words = _KS_WORD.sub("", line.rstrip())
    if not any(word.startswith("console=ttyS") for word in words.split()):
        words += " " + " ".join(SERIAL_CONSOLE)
    return words + " " + ks_arg


def _installs(line: str) -> bool:
    return "inst.stage2=" in line


def edit_isolinux(text: str, ks_arg: str, source: str = ISOLINUX_CFG) -> str:
    """The BIOS menu: inst.ks on every installing entry; the plain install the default."""
    lines = text.splitlines()
    depth = 0
    label_at: int | None = None
    default_label: int | None = None
    for index, line in enumerate(lines):
        words = line.split()
        key = words[0].lower() if words else ""
        if key == "menu" and len(words) > 1 and words[1].lower() == "begin":
            depth += 1
        elif key == "menu" and len(words) > 1 and words[1].lower() == "end":
            depth -= 1
        elif key == "label":
            label_at = index
        elif key == "append" and _installs(line):
            lines[index] = _with_kickstart(line, ks_arg)
            plain = "rd.live.check" not in line
            if depth == 0 and plain and default_label is None and label_at is not None:
                default_label = label_at
    if default_label is None:
        raise UserError(f"{source}: no install entry (an `append` with inst.stage2=)")
    out: list[str] = []
    timeout_seen = False
    for index, line in enumerate(lines):
        words = line.split()
        if words[:2] == ["menu", "default"]:
            continue
        if words and words[0].lower() == "timeout":
            out.append(f"timeout {ISOLINUX_TIMEOUT}")
            timeout_seen = True
            continue
        out.append(line)
        if index == default_label:
            out.append("  menu default")
    if not timeout_seen:
        out.insert(0, f"timeout {ISOLINUX_TIMEOUT}")
    return "\n".join(out) + "\n"


def edit_grub(text: str, ks_arg: str, source: str = GRUB_CFG) -> str:
    """The UEFI menu: inst.ks on every installing entry; the plain install the default."""
    lines = text.splitlines()
    depth = 0
    top_entries = -1
    entry_index: int | None = None
    default_entry: int | None = None
    for index, line in enumerate(lines):
        words = line.split()
        key = words[0] if words else ""
        if key == "menuentry":
            if depth == 0:
                top_entries += 1
                entry_index = top_entries
            else:
                entry_index = None
        elif key in ("linux", "linuxefi", "linux16") and _installs(line):
            lines[index] = _with_kickstart(line, ks_arg)
            plain = "rd.live.check" not in line
            if default_entry is None and plain and entry_index is not None:
                default_entry = entry_index
        depth += line.count("{") - line.count("}")
    if default_entry is None:
        raise UserError(f"{source}: no install entry (a `linux` line with inst.stage2=)")
    out = []
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("set default="):
            line = f'set default="{default_entry}"'
        elif stripped.startswith("set timeout="):
            line = f"set timeout={GRUB_TIMEOUT}"
        out.append(line)
    return "\n".join(out) + "\n"


def _looks_like_iso(path: Path) -> bool:
    with path.open("rb") as handle:
        handle.seek(ISO_MAGIC_OFFSET)
        return handle.read(5) == b"CD001"


def _listed(output: str, path: str) -> bool:
    """Whether xorriso's -lsl listed `path` (a line like `-r--r--r-- 1 0 0 1270 ... '/p'`)."""
    return re.search(rf"^[-dl][-rwxsStT]{{9}} .* '{re.escape(path)}'$", output, re.M) is not None


def read_layout(source: Path, scratch: Path) -> SourceLayout:
    """The source's volume id and boot menus; refuses what is not CentOS 7's layout."""
    if not _looks_like_iso(source):
        raise UserError(f"{source}: not an ISO 9660 image")
    wanted = (ISOLINUX_CFG, GRUB_CFG, EFIBOOT_IMG, "/repodata/repomd.xml")
    listing = proc.run(
        ["xorriso", "-indev", str(source), "-report_el_torito", "plain", "-lsl", *wanted]
    ).output
    match = re.search(r"^Volume id\s*:\s*'(.*)'$", listing, re.MULTILINE)
    if not match:
        raise UserError(f"{source}: xorriso found no volume id")
    volume_id = match.group(1)
    for path in (ISOLINUX_CFG, GRUB_CFG, EFIBOOT_IMG):
        if not _listed(listing, path):
            raise UserError(
                f"{source}: not a CentOS 7 installer ISO: no {path}",
                hint="use CentOS-7-x86_64-Minimal-2009.iso or DVD-2009.iso",
            )
    platforms = set(re.findall(r"^El Torito boot img :\s+\d+\s+(\w+)", listing, re.MULTILINE))
    if not {"BIOS", "UEFI"} <= platforms:
        raise UserError(
            f"{source}: not a CentOS 7 installer ISO: El Torito boot entries "
            f"{sorted(platforms) or 'none'}, not BIOS and UEFI"
        )
    extract = ["xorriso", "-osirrox", "on", "-indev", str(source)]
    for path in (ISOLINUX_CFG, GRUB_CFG, EFIBOOT_IMG):
        extract += ["-extract", path, str(scratch / path.lstrip("/"))]
    media_repodata = None
    if _listed(listing, "/repodata/repomd.xml"):
        media_repodata = scratch / "media" / "repodata"
        extract += ["-extract", "/repodata", str(media_repodata)]
    proc.run(extract)
    efiboot = scratch / EFIBOOT_IMG.lstrip("/")
    for extracted in scratch.rglob("*"):  # xorriso extracts read-only
        extracted.chmod(0o755 if extracted.is_dir() else 0o644)
    inner = scratch / "efiboot-grub.cfg"
    result = proc.run(
        ["mcopy", "-n", "-i", str(efiboot), EFIBOOT_GRUB_CFG, str(inner)], check=False
    )
    if result.returncode != 0:
        raise UserError(
            f"{source}: not a CentOS 7 installer ISO: no EFI/BOOT/grub.cfg in {EFIBOOT_IMG}"
        )
    return SourceLayout(
        volume_id=volume_id,
        isolinux_cfg=(scratch / ISOLINUX_CFG.lstrip("/")).read_text(errors="surrogateescape"),
        grub_cfg=(scratch / GRUB_CFG.lstrip("/")).read_text(errors="surrogateescape"),
        efiboot_img=efiboot,
        efiboot_grub_cfg=inner.read_text(errors="surrogateescape"),
        media_repodata=media_repodata,
    )


def remaster_argv(source: Path, target: Path, files: dict[str, Path]) -> list[str]:
    """xorriso: the source with its boot setup replayed and `files` (ISO path -> file) mapped."""
    # No fsync every 16 MiB (xorriso's default for files): the file is renamed
    # into place like every other output, and this halves the write time here.
    argv = ["xorriso", "-stdio_sync", "off", "-indev", str(source), "-outdev", str(target)]
    argv += ["-boot_image", "any", "replay"]
    for iso_path, local in files.items():
        argv += ["-map", str(local), iso_path]
    return argv


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    return path


def _check_space(directory: Path, needed: int) -> None:
    free = fsutil.free_bytes(directory)
    if free < needed:
        raise UserError(
            f"{directory}: not enough free space: {free // 1024**2} MiB free, "
            f"the installer ISO needs about {needed // 1024**2} MiB"
        )


def build_installer_iso(loaded: LoadedConfig, roles: RoleSet, options: IsoOptions) -> Path:
    """Write OUT/ROLE/ROLE-installer.iso; nothing is left behind on failure."""
    install = loaded.config.os.install
    checksum = options.iso_checksum or install.iso_checksum
    if options.repo_dir is not None and options.mirror is not None:
        raise UserError("--repo-dir and --mirror both name an offline repository: pick one")
    if options.mirror is not None:
        check_mirror_covers(options.mirror, loaded, roles)
    if options.repo_dir is not None:
        offline_repo.find_rpms(options.repo_dir)  # refuse an empty directory first
    for program in ("xorriso", "mcopy", "implantisomd5"):
        proc.require(program)
    if options.repo_dir is not None:
        proc.require("createrepo_c")
    source = source_iso.resolve_iso(options.iso or install.iso_url, checksum)
    scratch = Path(tempfile.mkdtemp(prefix="builder-iso-"))
    try:
        return _remaster(loaded, roles, options, source, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _remaster(
    loaded: LoadedConfig,
    roles: RoleSet,
    options: IsoOptions,
    source: Path,
    scratch: Path,
) -> Path:
    final = installer_path(options.output, roles)
    layout = read_layout(source, scratch / "source")
    files: dict[str, Path] = {}
    offline_url = None
    needed = source.stat().st_size + SPARE_BYTES
    if options.repo_dir is not None:
        repo = offline_repo.prepare(options.repo_dir, scratch / "repo")
        provided = repo.provides
        if layout.media_repodata is not None:
            provided |= offline_repo.metadata_provides(layout.media_repodata)
        wanted = [*loaded.config.os.base_packages, *roles.packages]
        missing = offline_repo.missing_packages(wanted, provided)
        if missing:
            raise UserError(
                f"{options.repo_dir}: no RPM provides {', '.join(missing)} "
                f"(the {roles.label} role installs it)",
                hint="add those RPMs and their dependencies (yumdownloader --resolve)",
            )
        for rpm in repo.rpms:
            files[f"/{REPO_ON_MEDIA}/{rpm.as_posix()}"] = repo.directory / rpm
        files[f"/{REPO_ON_MEDIA}/repodata"] = repo.metadata
        offline_url = f"file://{MEDIA_MOUNT}/{REPO_ON_MEDIA}"
        needed += repo.size
    if options.mirror is not None:
        for name in (PACKAGES_DIR, "repodata"):
            files[f"/{REPO_ON_MEDIA}/{name}"] = options.mirror / name
        offline_url = f"file://{MEDIA_MOUNT}/{REPO_ON_MEDIA}"
        needed += sum(path.stat().st_size for path in options.mirror.rglob("*") if path.is_file())

    ks_arg = kickstart_argument(layout.volume_id)
    rendered = render_role(
        loaded, roles, packer_version=LATEST_KNOWN_PACKER, offline_repo=offline_url
    )
    edits = scratch / "edits"
    edits.mkdir()
    grub = _write(edits / "grub.cfg", edit_grub(layout.grub_cfg, ks_arg))
    inner = _write(
        edits / "efiboot-grub.cfg",
        edit_grub(layout.efiboot_grub_cfg, ks_arg, f"{EFIBOOT_IMG}:/EFI/BOOT/grub.cfg"),
    )
    proc.run(["mcopy", "-o", "-i", str(layout.efiboot_img), str(inner), EFIBOOT_GRUB_CFG])
    files = {
        KICKSTART_PATH: _write(edits / KICKSTART, rendered.files[KICKSTART]),
        ISOLINUX_CFG: _write(edits / "isolinux.cfg", edit_isolinux(layout.isolinux_cfg, ks_arg)),
        GRUB_CFG: grub,
        EFIBOOT_IMG: layout.efiboot_img,
        **files,
    }
    _check_space(final.parent, needed)
    _write_atomically(source, files, final)
    return final


def _write_atomically(source: Path, files: dict[str, Path], final: Path) -> None:
    """Run the remaster into a temporary sibling of `final`, implant the md5, rename."""
    created = fsutil.nearest_existing(final.parent)
    target: Path | None = None
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{final.name}.", dir=final.parent)
        os.close(fd)
        target = Path(name)
        target.unlink()  # xorriso writes a new file there
        proc.run(remaster_argv(source, target, files))
        proc.run(["implantisomd5", "--force", str(target)])  # --force: blank any old checksum
        target.chmod(0o644)
        os.replace(target, final)
    except BaseException as exc:
        if target is not None:
            target.unlink(missing_ok=True)
        directory = final.parent
        while directory != created:  # the directories this run made, when empty
            try:
                directory.rmdir()
            except OSError:
                break
            directory = directory.parent
        full = f"{final.parent}: disk full while writing the installer ISO"
        if isinstance(exc, OSError):
            if exc.errno == errno.ENOSPC:
                raise UserError(full) from exc
            raise UserError(f"{final.parent}: cannot write: {exc.strerror or exc}") from exc
        if isinstance(exc, proc.ToolFailed) and "No space left" in exc.output:
            raise UserError(full) from exc
        raise
