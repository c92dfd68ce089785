"""Booting the Debian node stand-in under QEMU (TCG) for the tests.

The stand-in (tests/fixtures/standin/, built by its build.sh and cached by the
digest of its scripts) is a Debian 12 disk with systemd, sshd, real cloud-init
and stand-in units named like the Mesos services. `configured_image` applies
the product's own provisioning (`provision.sh configure seal`, rendered for a
role set) to a copy, chrooted, as the kickstart's %post does in an install,
after installing the role's packages as RPMs from the stand-in repositories
with the installer stand-in's own package step (files/rpm-install).
`Vm` boots a qcow2 overlay of it with a seed attached as a CD-ROM and waits
for cloud-init's final stage on the serial console; `DiskReader` reads files
back from the powered-off disk with debugfs, nothing mounted.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import REPO, free_port, require_tool

STANDIN_SCRIPTS = REPO / "tests" / "fixtures" / "standin"
CACHE = Path(os.environ.get("BUILDER_TEST_CACHE", "/var/tmp/builder-test-cache"))
PARTITION_OFFSET = 2048 * 512  # build-node.sh: one partition from sector 2048
SSH_FAILED = 255  # ssh's exit code for its own failure, not the command's
# A node stand-in boots in about 2.5 min alone under TCG; a master,slave took 8 min here
# with five other VMs on the 2 cores.
BOOT_DEADLINE = float(os.environ.get("BUILDER_TEST_BOOT_DEADLINE", "900"))


def build_standin() -> Path:
    """The cached stand-in directory (node.raw, the installer ISO, vmlinuz)."""
    for tool in ("debootstrap", "qemu-system-x86_64", "xorriso", "mcopy", "extlinux"):
        require_tool(tool)
    result = subprocess.run(
        ["bash", str(STANDIN_SCRIPTS / "build.sh"), str(CACHE / "standin")],
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        raise RuntimeError(f"stand-in build failed:\n{result.stderr[-4000:]}")
    built = _used(Path(result.stdout.strip().splitlines()[-1]))
    _prune(CACHE / "standin", "*")
    _prune(CACHE / "configured", "*.raw")
    return built


# A cached build of another digest (an older checkout's) that no run has used for this
# long is deleted: a stand-in is 1.3 GB and a role set's configured image 2.3 GB, and a
# host that runs the suite after every change would otherwise fill its disk with them.
UNUSED_FOR = 12 * 3600.0


def _used(path: Path) -> Path:
    """Mark a cached build as used now (its mtime), for `_prune`."""
    os.utime(path)
    return path


def _prune(directory: Path, pattern: str) -> None:
    """Delete `directory`'s cached builds matching `pattern` that no run used for
    UNUSED_FOR seconds (a configured image with its qcow2 conversion). Both xdist
    workers prune at their start: what the other deleted first is skipped."""
    stale = time.time() - UNUSED_FOR
    for path in directory.glob(pattern):
        try:
            unused = path.stat().st_mtime <= stale
        except FileNotFoundError:
            continue
        if path.name.startswith(".") or not unused:
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.with_suffix(".qcow2").unlink(missing_ok=True)
            path.unlink(missing_ok=True)


RPM_INSTALL = STANDIN_SCRIPTS / "files" / "rpm-install"


def role_packages(provision: str) -> list[str]:
    """The names the role's provision.sh installs (its `yum -y install` line), which the
    kickstart's %packages also lists, with the @core group anaconda always adds."""
    lines = (line.strip() for line in provision.splitlines())
    names = shlex.split(next(line for line in lines if line.startswith("yum -y install ")))[3:]
    return names if "@core" in names else ["@core", *names]


def rpm_sources(repos: Path, work: Path) -> Path:
    """The stand-in repositories (signed) as rpm-install reads its sources: per source N,
    N.name, N.base (the directory), N.primary (primary.xml) and N.group (comps)."""
    from tests.integration.rpmrepo import REPOS  # rpmrepo takes CACHE from here

    work.mkdir(parents=True, exist_ok=True)
    for number, name in enumerate(REPOS, 1):
        tree = repos / "signed" / name
        (work / f"{number}.name").write_text(name)
        (work / f"{number}.base").write_text(str(tree))
        [primary] = (tree / "repodata").glob("*-primary.xml.gz")
        (work / f"{number}.primary").write_bytes(gzip.decompress(primary.read_bytes()))
        for comps in (tree / "repodata").glob("*-comps.xml"):
            shutil.copyfile(comps, work / f"{number}.group")
    return work


def install_rpms(root: Path, packages: list[str], repos: Path, work: Path) -> str:
    """Install `packages` into the mounted root as the installer stand-in does (its output)."""
    result = subprocess.run(
        ["sh", str(RPM_INSTALL), str(root), str(rpm_sources(repos, work)), *packages],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # the scriptlets' systemctl writes to stderr
        text=True,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"rpm-install failed:\n{result.stdout}")
    return result.stdout


def configured_image(standin: Path, provision: str, label: str) -> Path:
    """A copy of the stand-in node with the role's packages installed as RPMs and
    `provision.sh configure seal` applied (install, then configure), cached."""
    from tests.integration.rpmrepo import build_rpmrepo  # rpmrepo takes CACHE from here

    repos = build_rpmrepo()
    digest = hashlib.sha256(f"{standin.name}\0{repos.name}\0{provision}".encode()).hexdigest()[:16]
    target = CACHE / "configured" / f"{label}-{digest}.raw"
    if target.exists():
        return _used(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{label}.", dir=target.parent))
    mount = scratch / "root"
    mount.mkdir()
    image = scratch / "node.raw"
    subprocess.run(["cp", "--sparse=always", str(standin / "node.raw"), str(image)], check=True)
    mounted: list[Path] = []
    try:
        subprocess.run(
            ["mount", "-o", f"loop,offset={PARTITION_OFFSET}", str(image), str(mount)], check=True
        )
        mounted.append(mount)
        for name in ("proc", "sys", "dev"):
            subprocess.run(["mount", "--bind", f"/{name}", str(mount / name)], check=True)
            mounted.append(mount / name)
        install_rpms(mount, role_packages(provision), repos, scratch / "sources")
        script = mount / "root" / "builder-provision.sh"
        script.write_text(provision)
        script.chmod(0o700)
        subprocess.run(
            ["chroot", str(mount), "/root/builder-provision.sh", "configure", "seal"],
            check=True,
            capture_output=True,
            text=True,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        )
        script.unlink()
    finally:
        for path in reversed(mounted):
            subprocess.run(["umount", str(path)], check=False)
    os.replace(image, target)
    shutil.rmtree(scratch)
    return target


def ssh_retried(
    run: Callable[[], subprocess.CompletedProcess[str]],
) -> subprocess.CompletedProcess[str]:
    """An ssh run; ssh's own failure (exit 255: a TCG guest too busy to answer the banner
    in time on a loaded host) is tried again, twice at most."""
    for _ in range(2):
        result = run()
        if result.returncode != SSH_FAILED:
            return result
    return run()


@dataclass
class Vm:
    """One boot of a node: QEMU running, SSH reachable with the seed's key."""

    process: subprocess.Popen[bytes]
    serial: Path
    port: int
    key: Path
    user: str

    def ssh(self, command: str, check: bool = True) -> str:
        result = ssh_retried(lambda: self._ssh(command))
        if check and result.returncode != 0:
            raise AssertionError(f"ssh {command!r} failed: {result.stderr}")
        return result.stdout

    def answers(self) -> bool:
        """SSH logs in and runs a command (ssh's failure prints nothing too: ask its code)."""
        return self._ssh("true").returncode == 0

    def _ssh(self, command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                "ssh",
                "-i",
                str(self.key),
                "-p",
                str(self.port),
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "LogLevel=ERROR",
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=30",
                f"{self.user}@127.0.0.1",
                command,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def console(self) -> str:
        return self.serial.read_text(errors="replace")


def _wait_for(predicate: object, what: str, deadline: float, vm: Vm) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if vm.process.poll() is not None:
            raise AssertionError(f"QEMU exited while waiting for {what}:\n{vm.console()[-3000:]}")
        if predicate():  # type: ignore[operator]
            return
        time.sleep(1)  # polling with a deadline, not a timing assertion
    raise AssertionError(f"no {what} within {deadline:g} s; serial log {vm.serial}")


def qemu_argv(serial: Path, firmware: tuple[str, ...] = ()) -> list[str]:
    """A stand-in VM under TCG: 1 GiB, no display, its console written to `serial`."""
    return [
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
    ]


@contextmanager
def boot(
    disk: Path,
    seed: Path,
    work: Path,
    key: Path,
    user: str,
    firmware: tuple[str, ...] = (),
    drives: tuple[str, ...] = (),
) -> Iterator[Vm]:
    """Boot `disk` with `seed` as a CD-ROM until SSH answers with the seed's key: cloud-init's
    init stage has run with the seed (SSH starts after it), its later stages may still be
    under way. `firmware` is QEMU's firmware option (`-bios OVMF.fd` for UEFI; SeaBIOS by
    default); `drives` more disks, each a QEMU `-drive` value (vdb, vdc, ... in order).
    QEMU's user network, restricted: the node's stack tries its inventory's addresses,
    which reach nothing from here."""
    user_net = "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{port}-:22"
    require_tool("qemu-system-x86_64")
    work.mkdir(parents=True, exist_ok=True)
    serial = work / f"serial-{len(list(work.glob('serial-*.log')))}.log"
    port = free_port()
    process = subprocess.Popen(
        [
            *qemu_argv(serial, firmware),
            "-drive",
            f"file={disk},if=virtio,format=qcow2",
            "-drive",
            f"file={seed},media=cdrom,format=raw,readonly=on",
            *(argument for drive in drives for argument in ("-drive", drive)),
            "-netdev",
            user_net.format(port=port),
            "-device",
            "virtio-net-pci,netdev=n0",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    vm = Vm(process, serial, port, key, user)
    try:
        _wait_for(lambda: vm.answers(), "ssh with the seed's key", BOOT_DEADLINE, vm)
        yield vm
    finally:
        # The disk is thrown away: the VM is stopped by its pid, not shut down.
        if process.poll() is None:
            process.kill()
            process.wait()


class DiskReader:
    """Files of a powered-off qcow2 disk, read with debugfs (nothing mounted)."""

    def __init__(self, disk: Path, work: Path, offset: int = PARTITION_OFFSET) -> None:
        require_tool("debugfs")
        self.raw = work / "readback.raw"
        subprocess.run(["qemu-img", "convert", "-O", "raw", str(disk), str(self.raw)], check=True)
        self.image = f"{self.raw}?offset={offset}"

    def debugfs(self, request: str) -> str:
        result = subprocess.run(
            ["debugfs", "-R", request, self.image], capture_output=True, text=True, check=True
        )
        return result.stdout

    def read(self, path: str) -> str:
        return self.debugfs(f"cat {path}")

    def dump(self, path: str, target: Path) -> Path:
        """A file copied out of the disk, byte for byte."""
        self.debugfs(f"dump {path} {target}")
        return target

    def link(self, path: str) -> str:
        """A symlink's target ('' when there is none)."""
        out = self.debugfs(f"stat {path}")
        marker = 'Fast link dest: "'
        if marker in out:
            return out.split(marker, 1)[1].split('"', 1)[0]
        return ""

    def mtime(self, path: str) -> str:
        out = self.debugfs(f"stat {path}")
        return next(line for line in out.splitlines() if line.strip().startswith("mtime:"))

    def close(self) -> None:
        self.raw.unlink(missing_ok=True)


def lay_out_build(output: Path, image: Path, label: str, slug: str) -> Path:
    """output/SLUG/ as `builder build` leaves it, from a configured stand-in image: the
    qcow2 (converted once, cached beside the image) and a manifest naming it."""
    from builder.image.manifest import (
        Artifact,
        BuildManifest,
        Fingerprint,
        ImageFormat,
        PackerRecord,
        SourceIso,
        Tools,
        image_file,
    )

    qcow2 = image.with_suffix(".qcow2")
    if not qcow2.exists():
        scratch = image.with_name(f".{image.stem}.{os.getpid()}.qcow2")
        subprocess.run(["qemu-img", "convert", "-O", "qcow2", str(image), str(scratch)], check=True)
        os.replace(scratch, qcow2)
    directory = output / slug
    directory.mkdir(parents=True, exist_ok=True)
    name = image_file(slug, ImageFormat.QCOW2)
    target = directory / name
    target.unlink(missing_ok=True)
    target.symlink_to(qcow2)
    BuildManifest(
        role=label,
        roles=tuple(label.split(",")),
        target="qemu",
        input_digest="standin-" + image.stem,
        source_iso=SourceIso(None, "0" * 64),
        accelerator="tcg",
        artifacts=(Artifact(name, ImageFormat.QCOW2, "0" * 64, Fingerprint.of(target)),),
        packer=PackerRecord("1.6.6", ()),
        tools=Tools("standin", None),
        started="",
        finished="",
        verified=False,
    ).write(directory)
    return target
