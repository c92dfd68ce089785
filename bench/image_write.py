"""The installer stand-in's system image write: every block against zeros skipped.

    .venv/bin/python -m bench.image_write [--runs 3]     (from the repository root)

The stand-in anaconda (tests/fixtures/standin/files/init) writes the node image,
`standin/node.raw.zst` on its media (1.4 GB, a third of it zeros), onto the disk it
installs. Writing it is most of an install's guest CPU under QEMU's TCG. This boots
the node stand-in (tests/fixtures/standin, cached) with the image on a disk of its
own and a fresh 2 GiB qcow2 disk per write, and writes the image, alternating,
--runs times each way:
- baseline: `zstd -dcq | dd bs=1M conv=fsync`, every block (the stand-in before);
- no-sparse: `zstd -dq --no-sparse -o DISK`, every block (the stand-in's way on a
  disk that does not zero ranges itself);
- sparse: `blkdiscard -f -z DISK`, then `zstd -dq --sparse -o DISK` and `sync`
  (the stand-in's way where the disk has write-zeroes, as QEMU's virtio disks do).
Each write is then compared with the image (`cmp`, not timed). Prints the medians of
the guest's CPU seconds (QEMU's user and system time) and of the wall time, and the
ratios against the baseline. zstd and blkdiscard are the host's (Debian 12's, as in
the installer stand-in), copied into the guest.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/ of this checkout
from bench.suite_load import cpu_seconds
from tests.integration.standin import Vm, boot, build_standin

ISO = "CentOS-7-x86_64-Minimal-standin.iso"
IMAGE = "/mnt/node.raw.zst"
WRITES = {
    "baseline": "zstd -dcq {image} | dd of={disk} bs=1M conv=fsync status=none",
    "no-sparse": "zstd -dqf --no-sparse -o {disk} < {image} && sync",
    "sparse": "blkdiscard -f -z {disk} && zstd -dqf --sparse -o {disk} < {image} && sync",
}
TOOLS = ("/usr/bin/zstd", "/usr/sbin/blkdiscard")
USER_DATA = """#cloud-config
disable_root: false
ssh_authorized_keys:
  - {key}
"""


def guest_cpu_seconds(pid: int) -> float:
    return cpu_seconds(Path(f"/proc/{pid}/stat").read_text())


def image_disk(standin: Path, work: Path) -> Path:
    """An ext4 disk holding the image as the stand-in's media carries it."""
    files = work / "image"
    files.mkdir()
    extract = ["-extract", "/standin", str(files)]
    subprocess.run(
        ["xorriso", "-osirrox", "on", "-indev", str(standin / ISO), *extract],
        check=True,
        capture_output=True,
    )
    disk = work / "image.ext4"
    subprocess.run(
        ["mkfs.ext4", "-q", "-d", str(files), str(disk), "512M"], check=True, capture_output=True
    )
    return disk


def seed(work: Path, key: Path) -> Path:
    (work / "user-data").write_text(USER_DATA.format(key=key.with_suffix(".pub").read_text()))
    (work / "meta-data").write_text("instance-id: bench-image-write\nlocal-hostname: bench\n")
    iso = work / "seed.iso"
    subprocess.run(
        ["cloud-localds", str(iso), str(work / "user-data"), str(work / "meta-data")], check=True
    )
    return iso


def write(vm: Vm, how: str, disk: str, size: int) -> tuple[float, float]:
    """One write of the image (`size` bytes) onto `disk`: the guest's CPU seconds and the
    wall seconds; then the disk compared with the image."""
    command = WRITES[how].format(image=IMAGE, disk=disk)
    cpu, start = guest_cpu_seconds(vm.process.pid), time.perf_counter()
    vm.ssh(command)
    seconds, cpu = time.perf_counter() - start, guest_cpu_seconds(vm.process.pid) - cpu
    vm.ssh(f"zstd -dcq {IMAGE} | cmp -n {size} - {disk}")
    return cpu, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    standin = build_standin()
    with tempfile.TemporaryDirectory(prefix="builder-bench-", dir="/var/tmp") as scratch:
        work = Path(scratch)
        key = work / "id"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        disk = work / "disk.qcow2"
        node = standin / "node.raw"
        subprocess.run(
            ["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(node), "-F", "raw", str(disk)],
            check=True,
        )
        drives = [f"file={image_disk(standin, work)},if=virtio,format=raw,readonly=on"]
        order = [how for _ in range(args.runs) for how in WRITES]
        for index in range(len(order)):
            target = work / f"target-{index}.qcow2"
            create = ["qemu-img", "create", "-q", "-f", "qcow2", str(target), "2G"]
            subprocess.run(create, check=True)
            drives.append(f"file={target},if=virtio,format=qcow2")
        figures: dict[str, list[tuple[float, float]]] = {how: [] for how in WRITES}
        with boot(disk, seed(work, key), work / "vm", key, "root", drives=tuple(drives)) as vm:
            for tool in TOOLS:
                subprocess.run(
                    [
                        "ssh",
                        *("-i", str(key), "-p", str(vm.port)),
                        *("-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"),
                        *("-o", "LogLevel=ERROR", "root@127.0.0.1"),
                        f"cat > {tool}; chmod 755 {tool}",
                    ],
                    input=Path(tool).read_bytes(),
                    check=True,
                )
            vm.ssh(f"mount -o ro /dev/vdb /mnt && cat {IMAGE} > /dev/null")  # read once, cached
            size = int(vm.ssh(f"zstd -dcq {IMAGE} | wc -c"))
            for index, how in enumerate(order):
                figures[how].append(write(vm, how, f"/dev/vd{chr(ord('c') + index)}", size))
    print(f"runs: {args.runs} each, alternating; {IMAGE.rsplit('/', 1)[1]} in a TCG guest")
    base_cpu = statistics.median(cpu for cpu, _ in figures["baseline"])
    base_wall = statistics.median(wall for _, wall in figures["baseline"])
    for how, runs in figures.items():
        cpu = statistics.median(c for c, _ in runs)
        wall = statistics.median(w for _, w in runs)
        print(
            f"{how:10} guest CPU median {cpu:6.1f} s ({cpu / base_cpu:4.2f}x baseline)"
            f"   wall median {wall:6.1f} s ({wall / base_wall:4.2f}x)"
        )


if __name__ == "__main__":
    main()
