"""`builder build --target iso` end to end, with the real tools and two real installs.

The stand-in installer ISO (CentOS 7's layout, a busybox "anaconda") is
remastered by the product: the slave without, the master with an offline
repository of RPMs built here under the real package names. xorriso and
checkisomd5 check the media; Debian's dnf resolves the role's packages from the
repository read back off the ISO; then both ISOs install onto empty disks,
the slave's under SeaBIOS and the master's under OVMF, at the same time. The
stand-in reads the kickstart by the label named in `inst.ks=`, installs and
runs %post (the product's `provision.sh configure seal`); the disks are read
back with debugfs.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from builder.config.load import embedded_config_dir, load_config
from builder.config.roles import compose
from builder.installer.remaster import MEDIA_MOUNT, REPO_ON_MEDIA
from builder.render.packer_template import LATEST_KNOWN_PACKER
from builder.render.role import KICKSTART, render_role
from tests.conftest import IN_CI, require_tool
from tests.installer_media import build_rpm, checksum_option, tiny_installer_iso
from tests.integration.standin import BOOT_DEADLINE, DiskReader

pytestmark = [pytest.mark.integration]
ISO_NAME = "CentOS-7-x86_64-Minimal-standin.iso"
OVMF = Path("/usr/share/ovmf/OVMF.fd")
# Every package the master image installs (os.yaml base_packages and the role),
# with a dependency that is no role package (mesos-libs) and one through a
# virtual provide (java: "jre-headless").
MASTER_RPMS = {
    "cloud-init": [],
    "cloud-utils-growpart": [],
    "firewalld": [],
    "java-1.8.0-openjdk-headless": [],
    "mesosphere-zookeeper": ["jre-headless"],
    "mesos": ["mesos-libs"],
    "mesos-libs": [],
    "marathon": ["jre-headless"],
    "chronos": ["mesos"],
}
MASTER_PACKAGES = [
    "cloud-init",
    "cloud-utils-growpart",
    "firewalld",
    "java-1.8.0-openjdk-headless",
    "mesosphere-zookeeper",
    "mesos",
    "marathon",
    "chronos",
]


def _rpm_dir(out: Path, skip: str = "") -> Path:
    for name, requires in MASTER_RPMS.items():
        if name != skip:
            provides = ["jre-headless"] if name.startswith("java-") else []
            build_rpm(out, name, requires=requires, provides=provides)
    return out


def _builder(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "builder", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=900,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def _remaster(source: Path, role: str, out: Path, repo_dir: Path | None = None) -> Path:
    args = [
        "build",
        role,
        "--target",
        "iso",
        "--iso",
        str(source),
        "--iso-checksum",
        checksum_option(source),
        "--out",
        str(out),
    ]
    if repo_dir is not None:
        args += ["--repo-dir", str(repo_dir)]
    result = _builder(*args, cwd=out.parent)
    assert result.returncode == 0, result.stderr
    iso = out / role / f"{role}-installer.iso"
    assert result.stdout.strip() == f"{role}: installer ISO: {iso}"
    return iso


def _extract(iso: Path, iso_path: str, target: Path) -> Path:
    subprocess.run(
        ["xorriso", "-osirrox", "on", "-indev", str(iso), "-extract", iso_path, str(target)],
        check=True,
        capture_output=True,
    )
    return target


def _rendered_kickstart(role: str, offline: bool) -> str:
    loaded = load_config(embedded_config_dir())
    url = f"file://{MEDIA_MOUNT}/{REPO_ON_MEDIA}" if offline else None
    rendered = render_role(
        loaded, compose(loaded, (role,)), packer_version=LATEST_KNOWN_PACKER, offline_repo=url
    )
    return rendered.files[KICKSTART]


@pytest.fixture(scope="module")
def isos(standin: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The slave's ISO (network install) and the master's (offline repo), from the stand-in."""
    for tool in ("xorriso", "mcopy", "createrepo_c", "implantisomd5", "checkisomd5"):
        require_tool(tool)
    root = tmp_path_factory.mktemp("iso")
    rpms = _rpm_dir(root / "rpms")
    source = standin / ISO_NAME
    return {
        "source": source,
        "rpms": rpms,
        "slave": _remaster(source, "slave", root / "output"),
        "master": _remaster(source, "master", root / "output", rpms),
    }


@pytest.mark.parametrize("role", ["slave", "master"])
def test_boot_entries_volume_id_hybrid_and_md5(isos: dict[str, Path], role: str) -> None:
    report = subprocess.run(
        [
            "xorriso",
            "-indev",
            str(isos[role]),
            "-report_el_torito",
            "plain",
            "-report_system_area",
            "plain",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    text = report.stdout + report.stderr
    assert "Volume id    : 'CentOS 7 x86_64'" in text
    entries = re.findall(r"^El Torito boot img :\s+\d+\s+(\w+)", text, re.M)
    assert entries == ["BIOS", "UEFI"], text
    paths = re.findall(r"^El Torito img path :\s+\d+\s+(\S+)", text, re.M)
    assert paths == ["/isolinux/isolinux.bin", "/images/efiboot.img"]
    assert "System area summary: MBR isohybrid cyl-align-on GPT" in text
    assert re.search(r"^MBR partition path :\s+2\s+/images/efiboot.img$", text, re.M)
    check = subprocess.run(["checkisomd5", str(isos[role])], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_checkisomd5_catches_a_changed_byte(tmp_path: Path) -> None:
    """The md5 check can fail: one byte changed in the data area of a remastered ISO."""
    iso = _remaster(tiny_installer_iso(tmp_path, pad_mib=4), "slave", tmp_path / "output")
    with iso.open("r+b") as handle:
        handle.seek(iso.stat().st_size - 1024 * 1024)
        byte = handle.read(1)
        handle.seek(-1, 1)
        handle.write(bytes([byte[0] ^ 0xFF]))
    assert subprocess.run(["checkisomd5", str(iso)], capture_output=True).returncode != 0


def test_a_source_with_its_own_media_checksum(tmp_path: Path) -> None:
    """CentOS' ISOs carry an implanted checksum; the remaster's is new and right."""
    source = tiny_installer_iso(tmp_path, pad_mib=1)
    subprocess.run(["implantisomd5", str(source)], check=True, capture_output=True)
    assert subprocess.run(["checkisomd5", str(source)], capture_output=True).returncode == 0
    iso = _remaster(source, "slave", tmp_path / "output")
    check = subprocess.run(["checkisomd5", "--md5sumonly", str(iso)], capture_output=True)
    theirs = subprocess.run(["checkisomd5", "--md5sumonly", str(source)], capture_output=True)
    assert check.stdout != theirs.stdout
    assert subprocess.run(["checkisomd5", str(iso)], capture_output=True).returncode == 0


@pytest.mark.parametrize("role", ["slave", "master"])
def test_kickstart_and_menus_on_the_media(isos: dict[str, Path], role: str, tmp_path: Path) -> None:
    iso = isos[role]
    kickstart = _extract(iso, "/ks.cfg", tmp_path / "ks.cfg").read_text()
    assert kickstart == _rendered_kickstart(role, offline=role == "master")
    ks_arg = "inst.ks=hd:LABEL=CentOS\\x207\\x20x86_64:/ks.cfg"
    isolinux = _extract(iso, "/isolinux/isolinux.cfg", tmp_path / "isolinux.cfg").read_text()
    grub = _extract(iso, "/EFI/BOOT/grub.cfg", tmp_path / "grub.cfg").read_text()
    efiboot = _extract(iso, "/images/efiboot.img", tmp_path / "efiboot.img")
    subprocess.run(
        ["mcopy", "-n", "-i", str(efiboot), "::/EFI/BOOT/grub.cfg", str(tmp_path / "inner.cfg")],
        check=True,
    )
    inner = (tmp_path / "inner.cfg").read_text()
    assert f" {ks_arg}\n" in isolinux
    assert "timeout 50\n" in isolinux
    for menu in (grub, inner):
        assert f" {ks_arg}\n" in menu
        assert 'set default="0"' in menu
        assert "set timeout=5" in menu


def _resolve(repo: Path, root: Path, packages: list[str]) -> subprocess.CompletedProcess[str]:
    """Debian's dnf: resolve and fetch `packages` from the repository only, into root."""
    return subprocess.run(
        [
            require_tool("dnf"),
            "--installroot",
            str(root),
            "--releasever",
            "7",
            "--setopt=reposdir=/nonexistent",
            "--setopt=cachedir=" + str(root / "cache"),
            "--repofrompath",
            f"offline,{repo.as_uri()}",
            "--repo",
            "offline",
            "--nogpgcheck",
            "-y",
            "install",
            "--downloadonly",
            "--downloaddir",
            str(root / "fetched"),
            *packages,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_offline_repo_on_the_iso_resolves_with_dnf(isos: dict[str, Path], tmp_path: Path) -> None:
    repo = _extract(isos["master"], f"/{REPO_ON_MEDIA}", tmp_path / "repo")
    assert sorted(p.name for p in repo.glob("*.rpm")) == sorted(
        p.name for p in isos["rpms"].glob("*.rpm")
    )
    primary = next((repo / "repodata").glob("*primary.xml.gz"))  # gzip: CentOS 7's yum reads it
    assert primary.exists()
    result = _resolve(repo, tmp_path / "root", MASTER_PACKAGES)
    assert result.returncode == 0, result.stdout + result.stderr
    fetched = sorted(p.name.split("-1.0-1")[0] for p in (tmp_path / "root" / "fetched").iterdir())
    assert fetched == sorted(MASTER_RPMS)  # mesos-libs came in as mesos' dependency


def test_a_dependency_missing_from_the_repo_fails_dnf(tmp_path: Path) -> None:
    """The product checks the role's names; a missing dependency shows in the real resolver."""
    rpms = _rpm_dir(tmp_path / "rpms", skip="mesos-libs")
    iso = _remaster(tiny_installer_iso(tmp_path), "master", tmp_path / "output", rpms)
    repo = _extract(iso, f"/{REPO_ON_MEDIA}", tmp_path / "repo")
    result = _resolve(repo, tmp_path / "root", MASTER_PACKAGES)
    assert result.returncode != 0
    assert "mesos-libs" in result.stdout + result.stderr


# ---- the installs ------------------------------------------------------------------------------
@dataclass
class Install:
    process: subprocess.Popen[bytes]
    serial: Path
    disk: Path
    started: float
    seconds: float = 0.0


def _start_install(iso: Path, work: Path, firmware: list[str]) -> Install:
    work.mkdir(parents=True, exist_ok=True)
    disk = work / "disk.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "2560M"], check=True)
    serial = work / "serial.log"
    process = subprocess.Popen(
        [
            "qemu-system-x86_64",
            "-machine",
            "accel=tcg",
            "-m",
            "1024",
            *firmware,
            "-nographic",
            "-monitor",
            "none",
            "-serial",
            f"file:{serial}",
            "-cdrom",
            str(iso),
            "-boot",
            "d",
            "-net",
            "none",
            "-drive",
            f"file={disk},if=virtio,format=qcow2",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return Install(process, serial, disk, time.monotonic())


@pytest.fixture(scope="module")
def installs(
    isos: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Install]]:
    """Both installs at once: the slave's ISO under SeaBIOS, the master's under OVMF."""
    require_tool("qemu-system-x86_64")
    if not OVMF.exists():
        message = f"no {OVMF} (apt-get install ovmf; ./run.sh test installs it)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    root = tmp_path_factory.mktemp("installs")
    runs = {
        "seabios": _start_install(isos["slave"], root / "seabios", []),
        "ovmf": _start_install(isos["master"], root / "ovmf", ["-bios", str(OVMF)]),
    }
    try:
        for run in runs.values():
            left = BOOT_DEADLINE - (time.monotonic() - run.started)
            with contextlib.suppress(subprocess.TimeoutExpired):
                run.process.wait(timeout=max(left, 1))
            run.seconds = time.monotonic() - run.started
        yield runs
    finally:
        for run in runs.values():
            if run.process.poll() is None:
                run.process.kill()
                run.process.wait()


@pytest.mark.vm
@pytest.mark.parametrize(
    ("firmware", "role"), [("seabios", "slave"), ("ovmf", "master")], ids=["seabios", "ovmf"]
)
def test_unattended_install(
    installs: dict[str, Install], firmware: str, role: str, tmp_path: Path
) -> None:
    run = installs[firmware]
    console = run.serial.read_text(errors="replace")
    assert run.process.returncode == 0, f"QEMU still running or failed:\n{console[-3000:]}"
    assert "standin-anaconda: installation complete; kickstart says: poweroff" in console, console[
        -3000:
    ]
    assert "standin-anaconda: kickstart: hd:LABEL=CentOS" in console
    assert ":/ks.cfg (" in console
    disk = DiskReader(run.disk, tmp_path)
    try:
        assert disk.read("/root/original-ks.cfg") == _rendered_kickstart(role, role == "master")
        assert disk.read("/etc/builder/roles") == f"{role}\n"
        masked = ["mesos-slave", "docker"] if role == "master" else ["zookeeper", "mesos-master"]
        for unit in masked:
            assert disk.link(f"/etc/systemd/system/{unit}.service") == "/dev/null", unit
        if role == "slave":
            assert disk.read("/etc/mesos-slave/containerizers") == "docker,mesos\n"
            assert disk.read("/etc/mesos-slave/executor_registration_timeout") == "5mins\n"
        assert disk.read("/etc/machine-id") == ""  # sealed
    finally:
        disk.close()
    shutil.rmtree(tmp_path, ignore_errors=True)
