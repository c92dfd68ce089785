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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from builder.config.load import embedded_config_dir, load_config
from builder.config.roles import compose
from builder.firstboot.seed import SeedFormat, write_seeds
from builder.image.installer_log import InstallerLog
from builder.installer.remaster import MEDIA_MOUNT, REPO_ON_MEDIA
from builder.render.packer_template import LATEST_KNOWN_PACKER
from builder.render.role import KICKSTART, render_role
from tests.conftest import IN_CI, REPO, require_tool, write_sample_secrets
from tests.installer_media import build_rpm, checksum_option, guest_config, tiny_installer_iso
from tests.integration.rpmrepo import RpmRepos
from tests.integration.standin import (
    BOOT_DEADLINE,
    PARTITION_OFFSET,
    RPM_INSTALL,
    DiskReader,
    boot,
    qemu_argv,
    rpm_sources,
)
from tests.integration.vmslots import vm_slots

pytestmark = [pytest.mark.integration]
ISO_NAME = "CentOS-7-x86_64-Minimal-standin.iso"
# Every role set gets its ISO; the master's is the offline one (cdrom + a repo on the media)
ROLE_SETS = ("slave", "master", "master,slave")
OFFLINE = {"master"}
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


def _remaster(
    source: Path, role: str, out: Path, repo_dir: Path | None = None, config: Path | None = None
) -> Path:
    args = [
        *(["--config", str(config)] if config else []),
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
    slug = role.replace(",", "-")
    iso = out / slug / f"{slug}-installer.iso"
    assert result.stdout.strip() == f"{role}: installer ISO: {iso}"
    return iso


def _extract(iso: Path, iso_path: str, target: Path) -> Path:
    subprocess.run(
        ["xorriso", "-osirrox", "on", "-indev", str(iso), "-extract", iso_path, str(target)],
        check=True,
        capture_output=True,
    )
    return target


def _rendered_kickstart(role: str, offline: bool, config: Path | None = None) -> str:
    loaded = load_config(config or embedded_config_dir())
    url = f"file://{MEDIA_MOUNT}/{REPO_ON_MEDIA}" if offline else None
    names = tuple(role.split(","))
    rendered = render_role(
        loaded, compose(loaded, names), packer_version=LATEST_KNOWN_PACKER, offline_repo=url
    )
    return rendered.files[KICKSTART]


@pytest.fixture(scope="module")
def isos(
    standin: Path, rpmrepo: RpmRepos, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """Each role set's ISO, from the stand-in: the slave's and master,slave's network
    installs from the stand-in repositories, the master's offline repo on the media."""
    for tool in ("xorriso", "mcopy", "createrepo_c", "implantisomd5", "checkisomd5"):
        require_tool(tool)
    root = tmp_path_factory.mktemp("iso")
    rpms = root / "rpms"  # the offline repository: the stand-in RPMs (signed), every repo's
    rpms.mkdir()
    for rpm in sorted(rpmrepo.root.glob("signed/*/*.rpm")):
        shutil.copyfile(rpm, rpms / rpm.name)
    source = standin / ISO_NAME
    config = guest_config(
        root / "guest-config", rpmrepo
    )  # not ./roles-config: the master uses the default
    return {
        "source": source,
        "rpms": rpms,
        "config": config,
        "slave": _remaster(source, "slave", root / "output", config=config),
        "master": _remaster(source, "master", root / "output", rpms),
        "master,slave": _remaster(source, "master,slave", root / "output", config=config),
    }


@pytest.mark.parametrize("role", ROLE_SETS)
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


@pytest.mark.parametrize("role", ROLE_SETS)
def test_kickstart_and_menus_on_the_media(isos: dict[str, Path], role: str, tmp_path: Path) -> None:
    iso = isos[role]
    kickstart = _extract(iso, "/ks.cfg", tmp_path / "ks.cfg").read_text()
    config = None if role in OFFLINE else isos["config"]
    assert kickstart == _rendered_kickstart(role, offline=role in OFFLINE, config=config)
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
    master = _extract(isos["master"], f"/{REPO_ON_MEDIA}", tmp_path / "master-repo")
    assert sorted(p.name for p in master.glob("*.rpm")) == sorted(
        p.name for p in isos["rpms"].glob("*.rpm")
    )
    # Debian's dnf on noarch RPMs (it matches no x86_64 package here)
    rpms = _rpm_dir(tmp_path / "rpms")
    iso = _remaster(tiny_installer_iso(tmp_path), "master", tmp_path / "output", rpms)
    repo = _extract(iso, f"/{REPO_ON_MEDIA}", tmp_path / "repo")
    assert sorted(p.name for p in repo.glob("*.rpm")) == sorted(p.name for p in rpms.glob("*.rpm"))
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
OVMF_ARGS = ("-bios", str(OVMF))
# Under UEFI the installed disk is GPT: the EFI System Partition (reqpart: 200 MiB from
# sector 2048), then the root file system; under BIOS the msdos root from sector 2048.
ROOT_OFFSET = {"seabios": PARTITION_OFFSET, "ovmf": (2048 + 200 * 2048) * 512}
FIRMWARE = {"seabios": (), "ovmf": OVMF_ARGS}


@dataclass
class Install:
    process: subprocess.Popen[bytes]
    serial: Path
    disk: Path
    started: float
    seconds: float = 0.0

    def console(self) -> str:
        return self.serial.read_text(errors="replace")

    def installer_error(self) -> str | None:
        """The installer's error line as `builder build` reads it from the console."""
        log = InstallerLog(self.serial)
        log.poll()
        return log.error


def _start_install(iso: Path, work: Path, firmware: str, network: bool = False) -> Install:
    work.mkdir(parents=True, exist_ok=True)
    disk = work / "disk.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "8G"], check=True)
    serial = work / "serial.log"
    # QEMU's user network: the guest reaches the host's loopback (the repositories) at
    # 10.0.2.2 and nothing answers for it anywhere else
    net = ["-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0"] if network else []
    process = subprocess.Popen(
        [
            *qemu_argv(serial, FIRMWARE[firmware]),
            "-cdrom",
            str(iso),
            "-boot",
            "d",
            *(net or ["-net", "none"]),
            "-drive",
            f"file={disk},if=virtio,format=qcow2",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return Install(process, serial, disk, time.monotonic())


@contextlib.contextmanager
def _all_finished(runs: dict[str, Install]) -> Iterator[dict[str, Install]]:
    """Wait (with the boot deadline) for every install's VM to power off; stop any left."""
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


def _require_ovmf() -> None:
    require_tool("qemu-system-x86_64")
    if not OVMF.exists():
        message = f"no {OVMF} (apt-get install ovmf; ./run.sh test installs it)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


# Installs and boots run two at a time: under TCG on 2 cores more VMs at once only share
# the same cores, and on a host other sessions load they then miss their deadlines.
PARALLEL_VMS = 2


@pytest.fixture(scope="module")
def installs(isos: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Install]:
    """Every role set's ISO under SeaBIOS and under OVMF (the network ones from the
    repositories, the master's from its media), a role set's two at a time."""
    _require_ovmf()
    root = tmp_path_factory.mktemp("installs")
    finished: dict[str, Install] = {}
    for first in range(0, len(INSTALLED), PARALLEL_VMS):
        batch = INSTALLED[first : first + PARALLEL_VMS]
        with vm_slots(len(batch)):
            runs = {
                _key(firmware, role): _start_install(
                    isos[role], root / _key(firmware, role), firmware, network=True
                )
                for firmware, role in batch
            }
            with _all_finished(runs):
                finished.update(runs)
    return finished


def _key(firmware: str, role: str) -> str:
    return f"{firmware}-{role.replace(',', '-')}"


INSTALLED = [(firmware, role) for role in ROLE_SETS for firmware in ("seabios", "ovmf")]
INSTALLED_IDS = [_key(firmware, role) for firmware, role in INSTALLED]
# What each role set's image masks (the units of the roles it does not have)
MASKED = {"master": ["mesos-slave", "docker"], "slave": ["zookeeper", "mesos-master"]}


@pytest.mark.vm
@pytest.mark.parametrize(("firmware", "role"), INSTALLED, ids=INSTALLED_IDS)
def test_unattended_install(
    installs: dict[str, Install], isos: dict[str, Path], firmware: str, role: str, tmp_path: Path
) -> None:
    run = installs[_key(firmware, role)]
    console = run.console()
    assert run.process.returncode == 0, f"QEMU still running or failed:\n{console[-3000:]}"
    assert run.installer_error() is None, console[-3000:]
    assert "standin-anaconda: installation complete; kickstart says: poweroff" in console, console[
        -3000:
    ]
    assert "standin-anaconda: kickstart: hd:LABEL=CentOS" in console
    assert ":/ks.cfg (" in console
    layout = "uefi; disk label: gpt" if firmware == "ovmf" else "bios; disk label: msdos"
    assert f"standin-anaconda: firmware: {layout}" in console
    config = None if role in OFFLINE else isos["config"]
    kickstart = _rendered_kickstart(role, role in OFFLINE, config)
    disk = DiskReader(run.disk, tmp_path, ROOT_OFFSET[firmware])
    try:
        assert disk.read("/root/original-ks.cfg") == kickstart
        assert disk.read("/etc/builder/roles") == f"{role}\n"
        for unit in MASKED.get(role, []):
            assert disk.link(f"/etc/systemd/system/{unit}.service") == "/dev/null", unit
        if "slave" in role.split(","):
            assert disk.read("/etc/mesos-slave/containerizers") == "docker,mesos\n"
            assert disk.read("/etc/mesos-slave/executor_registration_timeout") == "5mins\n"
        assert disk.read("/etc/machine-id") == ""  # sealed
        _check_kickstart_effects(disk, kickstart, firmware, run)
        _check_rpms(disk, kickstart, role, run, tmp_path)
    finally:
        disk.close()
    shutil.rmtree(tmp_path, ignore_errors=True)


def _check_kickstart_effects(disk: DiskReader, kickstart: str, firmware: str, run: Install) -> None:
    """Every configuration line of the kickstart, as the installed system shows it."""
    assert disk.read("/etc/locale.conf") == 'LANG="en_US.UTF-8"\n'  # lang
    assert disk.read("/etc/vconsole.conf") == 'KEYMAP="us"\n'  # keyboard
    assert disk.link("/etc/localtime") == "../usr/share/zoneinfo/UTC"  # timezone
    assert disk.read("/etc/adjtime").splitlines()[-1] == "UTC"  # --isUtc
    assert "SELINUX=enforcing\n" in disk.read("/etc/selinux/config")  # selinux
    ifcfg = disk.read("/etc/sysconfig/network-scripts/ifcfg-eth0")  # network (first NIC)
    assert "BOOTPROTO=dhcp\n" in ifcfg
    assert "ONBOOT=yes\n" in ifcfg
    shadow = dict(line.split(":")[:2] for line in disk.read("/etc/shadow").splitlines())
    assert shadow["root"].startswith("!")  # rootpw --lock
    assert shadow["centos"].startswith("!")  # user --lock
    wheel = next(line for line in disk.read("/etc/group").splitlines() if line.startswith("wheel:"))
    assert "centos" in wheel.split(":")[3].split(",")  # user --groups=wheel
    packages = kickstart.split("%packages\n", 1)[1].split("%end", 1)[0].split()
    log = disk.read("/root/standin-anaconda.log")  # /var/log is emptied by the seal step
    resolved = re.search(r"%packages resolved from \d+ source\(s\): (.*)", log)
    assert resolved is not None, log
    assert resolved.group(1).split() == [p for p in packages if not p.startswith("@")]
    append = re.search(r"--append='([^']*)'", kickstart)
    assert append is not None
    console = run.console()
    assert "Installing boot loader" in console
    if firmware == "ovmf":  # the EFI System Partition (reqpart) holds the boot loader
        fstab = disk.read("/etc/fstab")
        assert re.search(r"^UUID=\S+\t/boot/efi\tvfat\t", fstab, re.M), fstab
        esp = f"{disk.raw}@@{2048 * 512}"
        files = subprocess.run(
            ["mdir", "-b", "-i", esp, "::/EFI/BOOT"], capture_output=True, text=True, check=True
        ).stdout
        assert "::/EFI/BOOT/BOOTX64.EFI" in files.upper()
        grub = subprocess.run(
            ["mtype", "-i", esp, "::/EFI/BOOT/grub.cfg"], capture_output=True, text=True, check=True
        ).stdout
        assert f" root=LABEL=root ro {append.group(1)}\n" in grub  # bootloader --append
        assert "set timeout=1\n" in grub  # bootloader --timeout
    else:
        extlinux = disk.read("/boot/extlinux/extlinux.conf")
        assert f"  APPEND root=LABEL=root ro {append.group(1)}\n" in extlinux
        assert "TIMEOUT 10\n" in extlinux


def _check_rpms(disk: DiskReader, kickstart: str, role: str, run: Install, work: Path) -> None:
    """%packages as RPMs: the installed system's database holds every name the kickstart
    lists and what they require (mesos-libs); the mesos %post set the real trap (both
    Mesos units enabled, on the console) and builder's bake-time handling undid it."""
    database = work / "rpmdb"
    database.mkdir()
    disk.dump("/var/lib/rpm/rpmdb.sqlite", database / "rpmdb.sqlite")
    listed = subprocess.run(
        ["rpm", "--dbpath", str(database), "-qa", "--qf", "%{NAME}\\n"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    console = run.console()
    logged = re.search(r"standin-anaconda: packages installed as RPMs: (.*)", console)
    assert logged is not None, console[-3000:]
    assert sorted(listed) == logged.group(1).split()
    packages = kickstart.split("%packages\n", 1)[1].split("%end", 1)[0].split()
    assert {p for p in packages if not p.startswith("@")} | {"mesos-libs", "systemd"} <= set(
        listed
    ), listed
    # the mesos %post ran Debian's systemctl in the target: both units enabled at install
    for unit in ("mesos-master", "mesos-slave"):
        assert f"multi-user.target.wants/{unit}.service" in console, console[-3000:]
    # ... and the role's provision.sh undid it: nothing enabled at bake time (first boot
    # enables the role's units), the other role's unit masked
    for unit in ("mesos-master", "mesos-slave"):
        assert disk.link(f"/etc/systemd/system/multi-user.target.wants/{unit}.service") == ""
    for unit in MASKED.get(role, []):
        assert disk.link(f"/etc/systemd/system/{unit}.service") == "/dev/null"


def _seed(role: str, key: Path, work: Path) -> Path:
    """The node's NoCloud seed, with our key: test167 for the slave, test166 as a master
    only for the master, test166 as it is (master and slave) for master,slave."""
    config = work / "seed-config"
    shutil.copytree(embedded_config_dir(), config, ignore=shutil.ignore_patterns("__*"))
    public = " ".join(key.with_suffix(".pub").read_text().split()[:2])
    cluster = (config / "cluster.yaml").read_text()
    if role == "master":
        cluster = cluster.replace("roles: [master, slave]", "roles: [master]")
    cluster = cluster.replace("nodes:", f"ssh_authorized_keys: ['{public} tests']\nnodes:", 1)
    # The disk boots on QEMU's plain user network, where the test's SSH arrives from
    # 10.0.2.2: first boot's firewall lets SSH in only from an admin network.
    cluster = cluster.replace("nodes:", "admin_networks: [10.0.2.2/32]\nnodes:", 1)
    (config / "cluster.yaml").write_text(cluster)
    write_sample_secrets(config)  # secured, as users seed it
    loaded = load_config(config)
    hostname = "test167" if role == "slave" else "test166"
    node = next(n for n in loaded.config.cluster.nodes if n.hostname == hostname)
    assert ",".join(node.roles) == role
    [seed] = write_seeds(loaded, [node], work / "seed", SeedFormat.ISO)
    return seed


@dataclass
class Booted:
    """What one installed disk showed when booted alone: the roles file, the hostname its
    seed gave it and the firmware it found itself under (over SSH with the seed's key), or
    why it did not boot."""

    roles: str = ""
    hostname: str = ""
    firmware: str = ""
    seconds: float = 0.0
    error: str = ""


def _boot_alone(run: Install, role: str, firmware: str, key: Path, work: Path) -> Booted:
    if "standin-anaconda: installation complete" not in run.console():
        return Booted(error="the install failed")
    seed = _seed(role, key, work)
    with vm_slots(1):
        started = time.monotonic()
        try:
            with boot(run.disk, seed, work / "boot", key, "debian", FIRMWARE[firmware]) as vm:
                roles = vm.ssh("cat /etc/builder/roles")
                hostname = vm.ssh("hostname").strip()
                found = vm.ssh("test -d /sys/firmware/efi && echo uefi || echo bios").strip()
        except AssertionError as error:  # boot()'s deadline or a failed ssh
            return Booted(error=str(error)[-3000:])
        return Booted(roles, hostname, found, time.monotonic() - started)


@pytest.fixture(scope="module")
def boots(
    installs: dict[str, Install], ssh_key: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Booted]:
    """Each installed disk booted alone under the firmware it was installed with (no
    installer media), two at a time."""
    root = tmp_path_factory.mktemp("boots")
    with ThreadPoolExecutor(max_workers=PARALLEL_VMS) as pool:
        futures = {
            _key(firmware, role): pool.submit(
                _boot_alone,
                installs[_key(firmware, role)],
                role,
                firmware,
                ssh_key,
                root / _key(firmware, role),
            )
            for firmware, role in INSTALLED
        }
        return {key: future.result() for key, future in futures.items()}


@pytest.mark.vm
@pytest.mark.parametrize(("firmware", "role"), INSTALLED, ids=INSTALLED_IDS)
def test_the_installed_disk_boots_alone_under_its_firmware(
    boots: dict[str, Booted], firmware: str, role: str
) -> None:
    """No installer media: the disk's own boot loader, the same firmware, cloud-init's init
    stage with the node's seed (its hostname; SSH with its key). The stack's first boot is
    the cluster tests' (test_cluster_up.py): here the VM is stopped once SSH answers."""
    booted = boots[_key(firmware, role)]
    assert booted.error == ""
    assert booted.roles == f"{role}\n"
    assert booted.hostname == ("test167" if role == "slave" else "test166")
    assert booted.firmware == ("uefi" if firmware == "ovmf" else "bios")


# ---- what the installer refuses ------------------------------------------------------------------
def _with_kickstart(iso: Path, kickstart: str, out: Path) -> Path:
    """The ISO with another /ks.cfg (xorriso replays its boot setup)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    ks = out.with_suffix(".ks.cfg")
    ks.write_text(kickstart)
    subprocess.run(
        [
            "xorriso",
            "-indev",
            str(iso),
            "-outdev",
            str(out),
            "-boot_image",
            "any",
            "replay",
            "-map",
            str(ks),
            "/ks.cfg",
        ],
        check=True,
        capture_output=True,
    )
    return out


REFUSED_PACKAGE = "mesos-dns"


@pytest.fixture(scope="module")
def refused(isos: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Install]:
    """Three installs the installer must stop, at once: the master's kickstart without
    `reqpart` under OVMF, with a failing `%post --erroronfail`, with a package no
    repository has."""
    _require_ovmf()
    root = tmp_path_factory.mktemp("refused")
    kickstart = _rendered_kickstart("master", offline=True)
    assert "\nreqpart\n" in kickstart
    no_esp = kickstart.replace("\nreqpart\n", "\n")
    failing_post = kickstart + "%post --erroronfail\necho 'disk full' >&2\nexit 3\n%end\n"
    missing = kickstart.replace("%packages\n", f"%packages\n{REFUSED_PACKAGE}\n")
    with vm_slots(3):
        runs = {
            "no-esp": _start_install(
                _with_kickstart(isos["master"], no_esp, root / "no-esp.iso"),
                root / "no-esp",
                "ovmf",
                network=True,
            ),
            "post": _start_install(
                _with_kickstart(isos["master"], failing_post, root / "post.iso"),
                root / "post",
                "seabios",
                network=True,
            ),
            "package": _start_install(
                _with_kickstart(isos["master"], missing, root / "package.iso"),
                root / "package",
                "seabios",
                network=True,
            ),
        }
        with _all_finished(runs) as finished:
            return finished


@pytest.mark.vm
@pytest.mark.parametrize(
    ("case", "error"),
    [
        (
            "no-esp",
            "storage configuration failed: For a UEFI installation, you must include an EFI "
            "System Partition on a GPT-formatted disk, mounted at /boot/efi.",
        ),
        ("post", "There was an error running the kickstart script at line "),
        (
            "package",
            f"You have specified that the package '{REFUSED_PACKAGE}' should be installed.  "
            "This package does not exist. Would you like to ignore this package and continue "
            "with installation?",
        ),
    ],
)
def test_the_installer_refuses(refused: dict[str, Install], case: str, error: str) -> None:
    run = refused[case]
    console = run.console()
    assert run.process.returncode == 0, f"QEMU still running:\n{console[-3000:]}"  # powered off
    found = run.installer_error()
    assert found is not None, console[-3000:]
    assert found.startswith(error), found
    assert "The installer will now terminate." in console
    assert "installation complete" not in console
    if case == "post":
        assert "disk full" in found


# ---- the stand-in's grammar, without a VM ------------------------------------------------------
STANDIN_INIT = REPO / "tests" / "fixtures" / "standin" / "files" / "init"


def _standin_parse(kickstart: str, work: Path) -> subprocess.CompletedProcess[str]:
    """The stand-in anaconda's kickstart pass (its init, from the parser to "Starting
    automated install.") run by busybox sh on the host, in a scratch /tmp of its own."""
    text = STANDIN_INIT.read_text()
    start = text.index("# ---- the kickstart, parsed strictly")
    end = text.index('say "Starting automated install."')
    errors = text.index("stop() {")
    helpers = text[errors : text.index('say "Starting installer, one moment..."')]
    work.mkdir(parents=True, exist_ok=True)
    (work / "ks.cfg").write_text(kickstart)
    script = (
        'LOG=/dev/null; msg() { echo "standin-anaconda: $*"; }; say() { echo "$*"; }\n'
        'fail() { echo "FAILED: $*"; exit 1; }; has_arg() { return 1; }; CMDLINE_MODE=1\n'
        + helpers
        + text[start:end].replace("/tmp/", f"{work}/")
        + 'echo "BASE=$BASE FINAL=$FINAL SELINUX=$SELINUX_ TZ=$TZ_ LANG=$LANG_ KEYMAP=$KEYMAP"\n'
    )
    return subprocess.run(
        [require_tool("busybox"), "sh", "-c", script],
        capture_output=True,
        text=True,
        env={"KS": str(work / "ks.cfg"), "PATH": "/usr/bin:/bin"},
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("names", [("master",), ("slave",), ("master", "slave")])
@pytest.mark.parametrize("offline", [False, True], ids=["network", "offline"])
def test_the_standin_knows_every_line_the_product_renders(
    names: tuple[str, ...], offline: bool, tmp_path: Path
) -> None:
    loaded = load_config(embedded_config_dir())
    url = f"file://{MEDIA_MOUNT}/{REPO_ON_MEDIA}" if offline else None
    kickstart = render_role(
        loaded, compose(loaded, names), packer_version=LATEST_KNOWN_PACKER, offline_repo=url
    ).files[KICKSTART]
    result = _standin_parse(kickstart, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    base = "cdrom" if offline else "url http://vault.centos.org/7.9.2009/os/x86_64/"
    assert (
        f"BASE={base} FINAL=poweroff SELINUX=enforcing TZ=UTC LANG=en_US.UTF-8 KEYMAP=us"
        in result.stdout
    )


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (("skipx\n", "skipx\nvnc\n"), "Unknown command: vnc"),
        (("reqpart\n", "reqpart --weird\n"), "reqpart: unrecognized arguments: --weird"),
        (("%post ", "%pre\n%end\n%post "), "Section %pre is not carried out by the installer"),
        (("%packages\n", "%packages --nobase\n"), "%packages option not supported"),
        (("firewall --enabled", "firewall --enabled 'x"), "No closing quotation"),
        (("lang en_US.UTF-8\n", "lang\n"), "lang: expected 1 positional argument(s), got 0"),
    ],
    ids=["command", "option", "section", "packages-option", "quote", "arguments"],
)
def test_the_standin_refuses_what_it_does_not_carry_out(
    change: tuple[str, str], error: str, tmp_path: Path
) -> None:
    kickstart = _rendered_kickstart("slave", offline=False)
    assert change[0] in kickstart
    result = _standin_parse(kickstart.replace(change[0], change[1], 1), tmp_path)
    assert result.returncode == 1
    assert re.search(
        r"The following problem occurred on line \d+ of the kickstart file:", result.stdout
    )
    assert error in result.stdout, result.stdout


# ---- the stand-in's package step, without a VM --------------------------------------------------
def _plan(
    rpmrepo: RpmRepos, work: Path, *names: str, drop: str = ""
) -> subprocess.CompletedProcess[str]:
    """rpm-install's resolution against the stand-in repositories (one package's entry
    taken out of the metadata when `drop` names it), run by busybox sh as the installer
    runs it; a root that does not exist, so nothing can be installed."""
    sources = rpm_sources(rpmrepo.root, work / "sources")
    if drop:
        for primary in sources.glob("*.primary"):
            text = primary.read_text()
            packages = text.split('<package type="rpm">')
            kept = [p for p in packages[1:] if f"<name>{drop}</name>" not in p]
            primary.write_text('<package type="rpm">'.join([packages[0], *kept]))
    return subprocess.run(
        [
            require_tool("busybox"),
            "sh",
            str(RPM_INSTALL),
            str(work / "no-root"),
            str(sources),
            *names,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_package_step_refuses_a_requirement_no_source_has(
    rpmrepo: RpmRepos, tmp_path: Path
) -> None:
    result = _plan(rpmrepo, tmp_path, "@core", "mesos", drop="mesos-libs")
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert "Error: Package: mesos Requires: mesos-libs" in lines
    assert lines[-1] == "error: mesos requires mesos-libs"
    assert not (tmp_path / "no-root").exists()  # refused before anything is written


def test_the_package_step_refuses_an_unknown_package(rpmrepo: RpmRepos, tmp_path: Path) -> None:
    result = _plan(rpmrepo, tmp_path, "@core", "mesos-dns")
    assert result.returncode == 1
    assert result.stdout.splitlines()[-2:] == [
        "No package mesos-dns available.",
        "error: package mesos-dns",
    ]
