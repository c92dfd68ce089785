"""`builder doctor`: which tools are here, does KVM work, are AWS credentials set."""

from __future__ import annotations

import os
import platform
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from builder import proc
from builder.image import accel


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    hint: str = ""
    required: bool = True


# program, version arguments (None: no version flag), what it is for
PROGRAMS: tuple[tuple[str, tuple[str, ...] | None, str], ...] = (
    ("packer", ("version",), "builds images"),
    ("qemu-system-x86_64", ("--version",), "runs the qemu builder"),
    ("qemu-img", ("--version",), "converts qcow2 to raw"),
    ("xorriso", ("-version",), "remasters installer ISOs"),
    ("mcopy", ("--version",), "edits the ISO's EFI boot image"),
    ("createrepo_c", ("--version",), "makes offline yum repos"),
    ("implantisomd5", None, "implants the ISO media checksum"),
    ("cloud-init", ("--version",), "validates user-data"),
    ("ssh-keygen", None, "makes each build's SSH key"),
    ("openssl", ("version",), "makes the cluster CA and node certificates"),
    ("keytool", None, "adds the CA to node keystores as a trusted entry"),
)


def tool_checks() -> Iterator[Check]:
    for program, version_args, purpose in PROGRAMS:
        package = proc.PACKAGES.get(program, program)
        try:
            path = proc.require(program)
        except proc.ToolMissing:
            yield Check(program, False, f"missing ({purpose})", f"apt-get install {package}")
            continue
        version = ""
        if version_args is not None:
            result = proc.run([program, *version_args], check=False, timeout=30)
            lines = result.output.strip().splitlines()
            version = lines[0].strip() if lines else ""
        yield Check(program, True, f"{path} {version}".strip())


def default_kernel() -> Path | None:
    candidate = Path("/boot") / f"vmlinuz-{platform.release()}"
    return candidate if candidate.is_file() and os.access(candidate, os.R_OK) else None


def kvm_check(kernel: Path | None) -> Check:
    if not Path("/dev/kvm").exists():
        return Check(
            "kvm", False, "no /dev/kvm: builds use TCG (software, much slower)", required=False
        )
    try:
        result = accel.accelerator_works("kvm", kernel)
    except proc.ToolMissing as missing:
        return Check("kvm", False, f"not probed: {missing.message}", required=False)
    how = "a tiny guest" if kernel is None else f"a tiny guest and {kernel}"
    if result.works and kernel is None:
        return Check(
            "kvm",
            False,
            "unproven: a tiny guest runs, but a Linux kernel can still hang where it runs",
            "pass --kernel PATH to boot one",
            required=False,
        )
    if result.works:
        return Check("kvm", True, f"works ({how} ran)", required=False)
    return Check(
        "kvm",
        False,
        f"/dev/kvm exists but KVM does not work: {result.detail}; builds use TCG",
        required=False,
    )


def aws_check() -> Check:
    import boto3  # lazily: boto3 takes a while to import

    session = boto3.session.Session()
    credentials = session.get_credentials()
    if credentials is None:
        return Check(
            "aws credentials",
            False,
            "none found (needed only for --target ami and publish)",
            "aws configure, or AWS_PROFILE / AWS_ACCESS_KEY_ID",
            required=False,
        )
    return Check(
        "aws credentials",
        True,
        f"from {credentials.method}, region {session.region_name or 'unset'}",
        required=False,
    )


def run_checks(kernel: Path | None) -> list[Check]:
    return [*tool_checks(), kvm_check(kernel), aws_check()]
