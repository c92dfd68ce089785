"""The image specs run inside a build (`builder build --verify`), over Packer's SSH.

Packer's shell-local runs `builder verify --connect-only` before seal (one SSH
master connection with this build's key, which seal removes), then `builder
verify --layer image` over that connection after seal. `ImageSpecsInBuild`
is what the build calls (builder.image.in_build.InBuildChecks).
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from builder import proc
from builder.config.load import LoadedConfig
from builder.config.roles import RoleSet

VERIFY_REPORT = "verify.xml"  # the image specs' JUnit report
VERIFY_SOCKET = "verify.sock"
# The in-build SSH connection: no host key to trust (a fresh VM), this key only.
VERIFY_SSH_CONFIG = """\
Host *
  StrictHostKeyChecking no
  UserKnownHostsFile /dev/null
  IdentitiesOnly yes
  LogLevel ERROR
  ServerAliveInterval 15
"""


def verify_command(
    loaded: LoadedConfig, roles: RoleSet, work: Path, key: Path, packer_tmp: Path
) -> str:
    """`builder verify` for the image layer, as Packer's shell-local runs it (it adds --host).

    The control socket lives in Packer's short TMPDIR: a unix socket path is
    limited to 108 bytes."""
    ssh_config = packer_tmp / "ssh_config"
    ssh_config.write_text(VERIFY_SSH_CONFIG)
    return shlex.join(
        [
            sys.executable,
            "-m",
            "builder",
            "--config",
            str(loaded.directory),
            "verify",
            roles.label,
            "--layer",
            "image",
            "--ssh-identity",
            str(key),
            "--ssh-config",
            str(ssh_config),
            "--control-path",
            str(packer_tmp / VERIFY_SOCKET),
            "--junit-xml",
            str(work / VERIFY_REPORT),
        ]
    )


def close_verify_master(packer_tmp: Path) -> None:
    """A master left by a build that failed between opening it and verifying."""
    socket = packer_tmp / VERIFY_SOCKET
    if socket.exists():
        proc.run(["ssh", "-S", str(socket), "-O", "exit", "builder-build"], check=False, timeout=30)


def spec_failures(report: Path) -> list[str]:
    """The failed checks of a JUnit report from builder verify, one line each."""
    if not report.exists():
        return []
    import xml.etree.ElementTree as ET

    try:
        root = ET.parse(report).getroot()  # noqa: S314 - our own verify run wrote it
    except ET.ParseError:
        return []
    lines = []
    for case in root.iter("testcase"):
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        if problem is not None:
            message = problem.get("message", "").removeprefix("Failed: ")
            lines.append(f"FAIL {message.splitlines()[0] if message else case.get('name')}")
    return lines


class ImageSpecsInBuild:
    """The role's image specs inside a build: builder.image.in_build.InBuildChecks."""

    report_name = VERIFY_REPORT

    def command(
        self, loaded: LoadedConfig, roles: RoleSet, work: Path, key: Path, packer_tmp: Path
    ) -> str:
        return verify_command(loaded, roles, work, key, packer_tmp)

    def cleanup(self, packer_tmp: Path) -> None:
        close_verify_master(packer_tmp)

    def failures(self, work: Path) -> list[str]:
        return spec_failures(work / VERIFY_REPORT)
