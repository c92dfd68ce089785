"""Does KVM really work here? Ask guests, with a deadline.

`/dev/kvm` can exist while a KVM guest hangs (nested virtualisation missing),
so its presence proves nothing. Two probes:
- a tiny guest (builder/image/accel_probe.asm) that goes from real mode to long
  mode, runs code at 1 MiB and writes 0x2a to QEMU's isa-debug-exit port, so
  QEMU exits with status (0x2a << 1) | 1 = 85;
- a Linux kernel booted with no root file system: it works when the kernel
  reaches start_kernel ("Linux version" on the serial console) before the
  deadline.
Measured on the machines this project is built on: the tiny guest runs under
KVM, but a Debian kernel hangs right after its real-mode setup. So the tiny
guest alone can say yes wrongly; a kernel, when one is at hand, decides.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from builder import proc
from builder.errors import UserError

EXIT_PORT = 0xF4
EXIT_VALUE = 0x2A
EXPECTED_STATUS = (EXIT_VALUE << 1) | 1

# builder/image/accel_probe.asm, assembled by nasm (tests/unit/test_accel.py checks).
PROBE_CODE = bytes.fromhex(
    "fa31c08ed88ec08ed0bc007cbf0010b90018f3abc70600100320c70600200330"
    "c706003083000f0116987c0f20e06683c8200f22e066b8001000000f22d866b9"
    "800000c00f32660d000100000f300f20c0660d010000800f22c0ea5f7c080048"
    "be7c7c000000000000bf00001000b907000000f3a4b800001000ffe0b02ae6f4"
    "f4ebfd9090909090000000000000000000000000009a20000f00887c0000"
)
# A guest that never reaches the exit port: cli; hlt; jmp back (for tests).
HANG_CODE = bytes([0xFA, 0xF4, 0xEB, 0xFD])


def boot_sector(code: bytes) -> bytes:
    if len(code) > 510:
        raise ValueError("boot code longer than 510 bytes")
    return code + bytes(510 - len(code)) + b"\x55\xaa"


def probe_command(image: Path, accelerator: str) -> list[str]:
    return [
        "qemu-system-x86_64",
        "-accel",
        accelerator,
        "-m",
        "16",
        "-display",
        "none",
        "-nodefaults",
        "-no-reboot",
        "-device",
        f"isa-debug-exit,iobase={EXIT_PORT:#x},iosize=0x04",
        "-drive",
        f"file={image},format=raw,if=ide",
    ]


@dataclass(frozen=True)
class ProbeResult:
    accelerator: str
    works: bool
    detail: str


def probe(accelerator: str, *, deadline: float = 20.0, code: bytes = PROBE_CODE) -> ProbeResult:
    with tempfile.TemporaryDirectory(prefix="builder-accel-") as scratch:
        image = Path(scratch) / "probe.img"
        image.write_bytes(boot_sector(code))
        try:
            result = proc.run(probe_command(image, accelerator), check=False, timeout=deadline)
        except proc.ToolTimedOut:
            return ProbeResult(accelerator, False, f"the guest did not finish in {deadline:g} s")
    if result.returncode == EXPECTED_STATUS:
        return ProbeResult(accelerator, True, "a guest ran and exited")
    last = result.output.strip().splitlines()[-1:] or [""]
    return ProbeResult(
        accelerator, False, f"qemu exited with {result.returncode}: {last[0]}".rstrip(": ")
    )


KERNEL_STARTED = "Linux version"


def kernel_probe_command(kernel: Path, accelerator: str, serial_log: Path) -> list[str]:
    return [
        "qemu-system-x86_64",
        "-accel",
        accelerator,
        "-m",
        "256",
        "-display",
        "none",
        "-nodefaults",
        "-no-reboot",
        "-serial",
        f"file:{serial_log}",
        "-kernel",
        str(kernel),
        "-append",
        "console=ttyS0 earlyprintk=serial,ttyS0,115200 panic=-1",
    ]


def probe_kernel(kernel: Path, accelerator: str, *, deadline: float = 60.0) -> ProbeResult:
    """Boot a Linux kernel (no root: it panics and QEMU exits) and watch it start."""
    with tempfile.TemporaryDirectory(prefix="builder-accel-") as scratch:
        serial = Path(scratch) / "serial.log"
        try:
            proc.run(
                kernel_probe_command(kernel, accelerator, serial), check=False, timeout=deadline
            )
            finished = True
        except proc.ToolTimedOut:
            finished = False
        console = serial.read_text(errors="replace") if serial.exists() else ""
    started = KERNEL_STARTED in console
    if started:
        return ProbeResult(accelerator, True, f"{kernel.name} started")
    if finished:
        return ProbeResult(accelerator, False, f"{kernel.name} exited without starting")
    return ProbeResult(accelerator, False, f"{kernel.name} did not start in {deadline:g} s")


def accelerator_works(
    accelerator: str, kernel: Path | None, *, deadline: float = 60.0
) -> ProbeResult:
    """The tiny guest first (fast), then the kernel when there is one."""
    tiny = probe(accelerator, deadline=min(deadline, 20.0))
    if not tiny.works or kernel is None:
        return tiny
    return probe_kernel(kernel, accelerator, deadline=deadline)


KERNEL_PATHS = ("/isolinux/vmlinuz", "/images/pxeboot/vmlinuz")


def iso_kernel(iso: Path, directory: Path) -> Path:
    """The installer's own kernel, extracted with xorriso."""
    target = directory / "vmlinuz"
    for path in KERNEL_PATHS:
        result = proc.run(
            ["xorriso", "-osirrox", "on", "-indev", str(iso), "-extract", path, str(target)],
            check=False,
        )
        if result.returncode == 0 and target.is_file():
            return target
    raise UserError(
        f"{iso}: not an installer ISO: no kernel at {' or '.join(KERNEL_PATHS)}",
        hint="pass the CentOS 7 installer (Minimal or DVD) with --iso",
    )


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


def remembered(iso_sha256: str, cache: Path) -> ProbeResult | None:
    """What is known without probing: no /dev/kvm, or the verdict for this ISO since the
    host booted; None when only a probe can tell."""
    import json

    if not Path("/dev/kvm").exists():
        return ProbeResult("tcg", False, "no /dev/kvm")
    try:
        known = json.loads((cache / "accelerator.json").read_text())
    except (OSError, ValueError):
        return None
    kvm = known.get(f"{_boot_id()}:{iso_sha256}")
    if kvm is None:
        return None
    return ProbeResult(
        "kvm" if kvm["works"] else "tcg", kvm["works"], kvm["detail"] + " (remembered)"
    )


def choose_for_iso(iso: Path, iso_sha256: str, cache: Path) -> ProbeResult:
    """KVM if it boots this ISO's kernel, else TCG; remembered until the host reboots."""
    import json

    known = remembered(iso_sha256, cache)
    if known is not None:
        return known
    key = f"{_boot_id()}:{iso_sha256}"
    memo = cache / "accelerator.json"
    with tempfile.TemporaryDirectory(prefix="builder-accel-") as scratch:
        result = accelerator_works("kvm", iso_kernel(iso, Path(scratch)), deadline=20)
    cache.mkdir(parents=True, exist_ok=True)
    memo.write_text(json.dumps({key: {"works": result.works, "detail": result.detail}}))
    return ProbeResult("kvm" if result.works else "tcg", result.works, result.detail)
