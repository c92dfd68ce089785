"""`builder build`: a role set into images, through Packer (python-packer).

For each role set: render into a fresh work directory beside the output
(`output/.ROLE.build-*`), with this build's own SSH key in the kickstart;
pick the accelerator by probing (KVM only if it boots the ISO's kernel);
run `packer build -machine-readable`, streaming its lines into the progress
display and a log; convert Packer's qcow2 to raw too; checksum both; write
the manifest; then rename the work directory to `output/ROLE/`. A failed or
interrupted build leaves no `output/ROLE/` behind, only its logs in
`output/ROLE.failed/`.

The input digest covers everything that shapes the image (the rendered
kickstart, provisioning script and template without the per-build key, the
role and OS config, the Packer version, the ISO's checksum, the target): when
`output/ROLE/manifest.json` carries the same digest and its artifacts are
unchanged, the build returns at once.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from builder import __version__, clock, fsutil, proc
from builder.config.load import LoadedConfig
from builder.config.roles import RoleSet
from builder.errors import BuildFailed, UserError
from builder.image import accel, packer
from builder.image.sshkey import generate_build_key
from builder.installer import source_iso
from builder.installer.remaster import installer_path
from builder.progress import Event, Progress, parse_line, step_of
from builder.render.role import KICKSTART, PACKER_TEMPLATE, PACKER_VARS, PROVISION, render_role

MANIFEST = "manifest.json"
VERIFY_REPORT = "verify.xml"  # the image specs' JUnit report (build --verify)
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
TCG_TIMEOUT_FACTOR = 4
MIN_FREE_BYTES = 4 * 1024**3


class Target(StrEnum):
    QEMU = "qemu"
    AMI = "ami"


PACKER_SOURCE = {Target.QEMU: "qemu.centos7", Target.AMI: "amazon-ebs.centos7"}


@dataclass(frozen=True)
class BuildOptions:
    target: Target = Target.QEMU
    iso: str | None = None
    iso_checksum: str | None = None
    output: Path = Path("output")
    force: bool = False
    dry_run: bool = False
    on_error: str = "cleanup"
    headful: bool = False
    require_kvm: bool = False
    verify: bool = False


@dataclass
class BuildResult:
    roles: RoleSet
    directory: Path
    cached: bool
    digest: str
    manifest: dict[str, Any] = field(default_factory=dict)
    command: tuple[str, ...] = ()
    variables: dict[str, str] = field(default_factory=dict)


def input_digest(
    loaded: LoadedConfig,
    roles: RoleSet,
    packer_version: tuple[int, int, int],
    iso_checksum: str,
    target: Target,
) -> str:
    unattended = render_role(loaded, roles, packer_version=packer_version)
    digest = hashlib.sha256()
    for name in sorted(unattended.files):
        digest.update(f"{name}\0{unattended.files[name]}\0".encode())
    config = {
        "os": loaded.config.os.model_dump(mode="json"),
        "roles": {name: loaded.config.roles[name].model_dump(mode="json") for name in roles.names},
    }
    digest.update(json.dumps(config, sort_keys=True).encode())
    digest.update(f"packer {packer_version}\0iso {iso_checksum}\0target {target}".encode())
    return digest.hexdigest()


def _fingerprint(path: Path) -> dict[str, int]:
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def cached_result(directory: Path, digest: str) -> dict[str, Any] | None:
    """The manifest of an existing build with this digest whose artifacts are untouched."""
    try:
        manifest: dict[str, Any] = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if manifest.get("input_digest") != digest:
        return None
    for artifact in manifest.get("artifacts", []):
        path = directory / artifact["path"]
        # The sha256 was taken when the build wrote the file; a file whose size
        # and mtime still match is the file that was hashed.
        if not path.is_file() or _fingerprint(path) != artifact["fingerprint"]:
            return None
    return manifest


@dataclass
class _Log:
    """Packer's lines: into the build log, and as progress events."""

    path: Path
    role: str
    progress: Progress
    started: float
    lines: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    step: str = ""

    def __call__(self, line: str) -> None:
        with self.lock, self.path.open("a", encoding="utf-8") as handle:
            handle.write(line if line.endswith("\n") else line + "\n")
        parsed = parse_line(line)
        elapsed = time.monotonic() - self.started
        if parsed is None or parsed.kind != "ui" or len(parsed.data) < 2:
            return
        level, message = parsed.data[0], parsed.data[1].strip()
        self.lines.append(message)
        if level == "error":
            self.progress.emit(Event(self.role, "error", message, elapsed))
            return
        step = step_of(message)
        if step and step != self.step:
            self.step = step
            self.progress.emit(Event(self.role, "step", step, elapsed))
        else:
            self.progress.emit(Event(self.role, "message", message, elapsed))


def _packer_variables(
    loaded: LoadedConfig,
    work: Path,
    key: Path,
    iso: Path | None,
    iso_checksum: str,
    accelerator: str,
    options: BuildOptions,
) -> dict[str, str]:
    variables = {
        "http_directory": str(work / "render"),
        "provision_script": str(work / "render" / PROVISION),
        "ssh_private_key_file": str(key),
        "output_directory": str(work / "packer"),
        "serial_log": str(work / "serial.log"),
        "manifest": str(work / "packer-manifest.json"),
        "accelerator": accelerator,
        "iso_checksum": iso_checksum,
        "headless": "false" if options.headful else "true",
    }
    if iso is not None:
        variables["iso_url"] = str(iso)
    if accelerator == "tcg":
        variables["ssh_timeout"] = f"{ssh_timeout_seconds(loaded) * TCG_TIMEOUT_FACTOR}s"
    return variables


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


def ssh_timeout_seconds(loaded: LoadedConfig) -> int:
    text = loaded.config.os.packer.ssh_timeout
    return int(text[:-1]) * {"s": 1, "m": 60, "h": 3600}[text[-1]]


def build_one(
    loaded: LoadedConfig,
    roles: RoleSet,
    options: BuildOptions,
    packer_version: tuple[int, int, int],
    progress: Progress,
) -> BuildResult:
    os_config = loaded.config.os
    checksum = options.iso_checksum or os_config.install.iso_checksum
    source = options.iso or os_config.install.iso_url
    digest = input_digest(loaded, roles, packer_version, checksum, options.target)
    final = options.output / roles.slug
    started = time.monotonic()
    manifest = None if options.force else cached_result(final, digest)
    if manifest and (manifest.get("verified") or not options.verify):
        progress.emit(Event(roles.label, "cached", str(final), 0.0))
        return BuildResult(roles, final, True, digest, manifest)

    proc.require("packer")
    proc.require("ssh-keygen")
    iso: Path | None = None
    accelerator = "none"
    if options.target is Target.QEMU:
        proc.require("qemu-system-x86_64")
        progress.emit(Event(roles.label, "step", "verifying ISO", 0.0))
        iso = source_iso.resolve_iso(source, checksum)
        choice = accel.choose_for_iso(
            iso, source_iso.parse_checksum(checksum), source_iso.cache_dir()
        )
        accelerator = choice.accelerator
        if not choice.works:
            if options.require_kvm:
                raise UserError(
                    f"KVM does not work here ({choice.detail}) and --require-kvm is set"
                )
            progress.emit(
                Event(
                    roles.label,
                    "warning",
                    f"KVM does not work here ({choice.detail}): building with TCG, much slower; "
                    f"timeouts raised {TCG_TIMEOUT_FACTOR}x",
                    0.0,
                )
            )
        if fsutil.free_bytes(options.output) < MIN_FREE_BYTES:
            raise UserError(f"{options.output}: less than 4 GiB free: not enough for a build")

    options.output.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{roles.slug}.build-", dir=options.output)).resolve()
    # Packer puts its plugins' unix sockets in TMPDIR: socket paths are limited
    # to 108 bytes, so Packer gets a short one of its own, not the work directory.
    packer_tmp = Path(tempfile.mkdtemp(prefix="builder-packer-"))
    try:
        key = generate_build_key(work / "key")
        rendered = render_role(
            loaded,
            roles,
            packer_version=packer_version,
            build_key=key.public_line,
            verify=options.verify,
        )
        rendered.write(work / "render")
        variables = _packer_variables(
            loaded, work, key.private_key, iso, checksum, accelerator, options
        )
        if options.verify:
            variables["verify_command"] = verify_command(
                loaded, roles, work, key.private_key, packer_tmp
            )
        log = _Log(work / "build.log", roles.label, progress, started)
        log.path.touch()
        command = packer.build_command(
            work / "render" / PACKER_TEMPLATE,
            variables,
            work / "render" / PACKER_VARS,
            only=PACKER_SOURCE[options.target],
            on_error=options.on_error,
            env={
                "PACKER_LOG": "1",
                "PACKER_LOG_PATH": str(work / "packer-debug.log"),
                "TMPDIR": str(packer_tmp),
            },
            out=log,
        )
        argv = packer.command_argv(command)
        if options.dry_run:
            return BuildResult(roles, final, False, digest, {}, argv, variables)
        progress.emit(Event(roles.label, "start", str(work / "build.log"), 0.0))
        started_at = clock.utc_now()
        result = command()
        if int(result.exit_code) != 0:
            message = f"packer build failed with exit code {result.exit_code}"
            failed_specs = spec_failures(work / VERIFY_REPORT)
            if any("Timeout waiting for SSH" in line for line in log.lines):
                waited = variables.get("ssh_timeout", os_config.packer.ssh_timeout)
                message = (
                    f"the installed system did not answer SSH (root, this build's key) within "
                    f"{waited}: the serial console log shows what it did"
                )
            tail = [line for entry in log.lines for line in entry.splitlines() if line.strip()]
            if failed_specs:
                message = f"the image failed {len(failed_specs)} of its specs; nothing was kept"
                tail = failed_specs
            raise BuildFailed(roles.label, message, tail[-12:], [])
        manifest = _finish(
            loaded,
            roles,
            options,
            work,
            digest,
            iso,
            checksum,
            accelerator,
            packer_version,
            started_at,
            progress,
            started,
        )
        installer = installer_path(options.output, roles)  # made by --target iso: kept
        if installer.exists():
            os.replace(installer, work / installer.name)
        fsutil.swap_dir(work, final)
        shutil.rmtree(options.output / f"{roles.slug}.failed", ignore_errors=True)
        progress.emit(Event(roles.label, "done", str(final), time.monotonic() - started))
        return BuildResult(roles, final, False, digest, manifest, argv, variables)
    except BaseException as exc:
        logs = _keep_logs(work, options.output / f"{roles.slug}.failed")
        if isinstance(exc, BuildFailed):
            exc.logs = logs
        elif isinstance(exc, OSError) and exc.errno == 28:
            raise UserError(f"{options.output}: disk full during the build") from exc
        raise
    finally:
        if options.verify:
            close_verify_master(packer_tmp)
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(packer_tmp, ignore_errors=True)


def _keep_logs(work: Path, failed: Path) -> list[Path]:
    if not work.exists():
        return []
    shutil.rmtree(failed, ignore_errors=True)
    failed.mkdir(parents=True)
    kept = []
    for name in ("build.log", "serial.log", "packer-debug.log", VERIFY_REPORT):
        if (work / name).exists():
            shutil.move(str(work / name), failed / name)
            kept.append(failed / name)
    return kept


def _finish(
    loaded: LoadedConfig,
    roles: RoleSet,
    options: BuildOptions,
    work: Path,
    digest: str,
    iso: Path | None,
    checksum: str,
    accelerator: str,
    packer_version: tuple[int, int, int],
    started_at: str,
    progress: Progress,
    started: float,
) -> dict[str, Any]:
    packer_manifest = json.loads((work / "packer-manifest.json").read_text())
    artifacts = []
    if options.target is Target.QEMU:
        progress.emit(Event(roles.label, "step", "converting to raw", time.monotonic() - started))
        name = f"mesos-{roles.slug}"
        qcow2 = work / f"{name}.qcow2"
        os.replace(work / "packer" / f"{name}.qcow2", qcow2)
        raw = work / f"{name}.raw"
        proc.run(["qemu-img", "convert", "-O", "raw", str(qcow2), str(raw)])
        progress.emit(Event(roles.label, "step", "checksumming", time.monotonic() - started))
        for path, fmt in ((qcow2, "qcow2"), (raw, "raw")):
            artifacts.append(
                {
                    "path": path.name,
                    "format": fmt,
                    "sha256": fsutil.sha256_of(path),
                    "fingerprint": _fingerprint(path),
                }
            )
        shutil.rmtree(work / "packer", ignore_errors=True)
    qemu = proc.run(["qemu-system-x86_64", "--version"], check=False).stdout.splitlines()
    manifest: dict[str, Any] = {
        "role": roles.label,
        "roles": list(roles.names),
        "target": str(options.target),
        "input_digest": digest,
        "source_iso": {
            "path": str(iso) if iso else None,
            "sha256": source_iso.parse_checksum(checksum),
        },
        "accelerator": accelerator,
        "artifacts": artifacts,
        "packer": {
            "version": ".".join(map(str, packer_version)),
            "builds": packer_manifest.get("builds", []),
        },
        "tools": {"builder": __version__, "qemu": qemu[0] if qemu else None},
        "started": started_at,
        "finished": clock.utc_now(),
        "verified": options.verify,
    }
    for name in (KICKSTART, PROVISION):
        shutil.copy(work / "render" / name, work / name)
    shutil.rmtree(work / "render")
    shutil.rmtree(work / "key")
    (work / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def build_all(
    loaded: LoadedConfig,
    role_sets: list[RoleSet],
    options: BuildOptions,
    packer_version: tuple[int, int, int],
    progress: Progress,
) -> list[BuildResult]:
    """Several role sets build in parallel, each with its own work directory and log."""
    if len(role_sets) == 1:
        return [build_one(loaded, role_sets[0], options, packer_version, progress)]
    with ThreadPoolExecutor(max_workers=len(role_sets)) as pool:
        futures = [
            pool.submit(build_one, loaded, roles, options, packer_version, progress)
            for roles in role_sets
        ]
        return [future.result() for future in futures]
