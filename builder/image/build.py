"""`builder build`: a role set into images, through Packer (python-packer).

For each role set: render into a fresh work directory beside the output
(`output/.ROLE.build-*`), with this build's own SSH key in the kickstart;
pick the accelerator by probing (KVM only if it boots the ISO's kernel);
run `packer build -machine-readable`, streaming its lines into the progress
display and a log, while the installer's serial log is followed
(image/installer_log.py: its progress as steps; an installer error stops
Packer by its pid at once, the error line in the failure); convert Packer's
qcow2 to raw too; checksum both; write the manifest; then rename the work
directory to `output/ROLE/`. A failed or interrupted build leaves no
`output/ROLE/` behind, only its logs in `output/ROLE.failed/`.

The input digest covers everything that shapes the image (the rendered
kickstart, provisioning script and template without the per-build key, the
role and OS config, the Packer version, the ISO's checksum, the target): when
`output/ROLE/manifest.json` carries the same digest and its artifacts are
unchanged, the build returns at once.

Before anything boots, the preflight checks that the role set's packages can
be had (builder/mirror/preflight.py): from the configured repositories, or
from a mirror (`--mirror DIR`), which the qemu build then serves to the
installer through Packer's HTTP server (the installer reads only it and its
own media). `--dry-run` downloads nothing: it prints the plan, the
preflight's verdict and the accelerator it would try.

`--target iso` is dispatched here too: the installer remaster (builder/installer/).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
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
from builder.errors import BuilderError, BuildFailed, UserError
from builder.image import accel, packer
from builder.image.in_build import InBuildChecks
from builder.image.installer_log import InstallerLog
from builder.image.manifest import (
    Artifact,
    BuildManifest,
    Fingerprint,
    ImageFormat,
    ManifestError,
    PackerRecord,
    SourceIso,
    Tools,
    image_file,
)
from builder.image.sshkey import generate_build_key
from builder.installer import source_iso
from builder.installer.remaster import IsoOptions, build_installer_iso, installer_path
from builder.mirror.lock import LOCK_FILE, MirrorLock
from builder.mirror.preflight import check_sources
from builder.progress import Event, EventKind, Progress
from builder.render.packer_template import PackerVars
from builder.render.role import KICKSTART, PACKER_TEMPLATE, PACKER_VARS, PROVISION, render_role

TCG_TIMEOUT_FACTOR = 4
MIN_FREE_BYTES = 4 * 1024**3
# The host as a guest on QEMU's user network sees it: where Packer's HTTP server answers.
QEMU_HOST_ADDRESS = "10.0.2.2"
MIRROR_PATH = "mirror"  # the mirror's place under Packer's HTTP directory
LOGS = ("build.log", "serial.log", "packer-debug.log")  # kept when a build fails
SERIAL_POLL_SECONDS = 0.5  # how often the installer's serial log is read during a build
PACKER_STOP_SECONDS = 30.0  # Packer's own cleanup after SIGINT, before SIGKILL


class Target(StrEnum):
    QEMU = "qemu"
    AMI = "ami"
    ISO = "iso"


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
    checks: InBuildChecks | None = None  # build --verify: run inside the build
    repo_dir: Path | None = None  # --target iso: an offline repository
    mirror: Path | None = None  # install from this mirror (builder mirror) only
    preflight: bool = True  # check the packages can be had before anything boots

    def __post_init__(self) -> None:
        if self.target is not Target.ISO:
            if self.repo_dir is not None:
                raise UserError("--repo-dir is for --target iso")
            return
        if self.checks is not None:
            raise UserError(
                "--verify runs inside a Packer build; for an installer ISO, verify the "
                "installed node: builder verify ROLE --host ssh://USER@HOST --layer node"
            )
        if self.dry_run:
            raise UserError("--dry-run is for Packer builds; an installer ISO takes seconds")

    @property
    def verify(self) -> bool:
        return self.checks is not None


@dataclass
class BuildResult:
    roles: RoleSet
    directory: Path
    cached: bool
    digest: str
    manifest: BuildManifest | None = None
    command: tuple[str, ...] = ()
    variables: dict[str, str] = field(default_factory=dict)
    installer_iso: Path | None = None  # --target iso
    preflight: str = ""  # the preflight's verdict
    accelerator: str = ""
    unknown: tuple[str, ...] = ()  # what a dry run could not know without the ISO


@dataclass
class BuildRun:
    """One role set's build as it goes: what it was given, and what it found on the way."""

    loaded: LoadedConfig
    roles: RoleSet
    options: BuildOptions
    packer_version: tuple[int, int, int]
    progress: Progress
    checksum: str  # the ISO's, sha256:HEX
    digest: str  # the input digest
    started: float = field(default_factory=time.monotonic)
    iso: Path | None = None  # the verified local ISO (qemu)
    accelerator: str = "none"
    work: Path = Path()  # output/.SLUG.build-*
    packer_tmp: Path = Path()  # Packer's own short TMPDIR
    started_at: str = ""  # when Packer started, UTC
    preflight: str = ""  # the preflight's verdict
    unknown: tuple[str, ...] = ()  # what a dry run could not know without the ISO

    @property
    def final(self) -> Path:
        return self.options.output / self.roles.slug

    @property
    def failed_dir(self) -> Path:
        return self.options.output / f"{self.roles.slug}.failed"

    @property
    def render_dir(self) -> Path:
        return self.work / "render"

    def emit(self, kind: EventKind, detail: str, elapsed: float | None = None) -> None:
        if elapsed is None:
            elapsed = time.monotonic() - self.started
        self.progress.emit(Event(self.roles.label, kind, detail, elapsed))


def input_digest(
    loaded: LoadedConfig,
    roles: RoleSet,
    packer_version: tuple[int, int, int],
    iso_checksum: str,
    target: Target,
    mirror_lock: str | None = None,
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
    if mirror_lock is not None:  # the same lock is the same set of packages
        digest.update(f"\0mirror {mirror_lock}".encode())
    return digest.hexdigest()


def mirror_lock_digest(mirror: Path | None) -> str | None:
    return None if mirror is None else MirrorLock.read(mirror / LOCK_FILE).digest


def cached_result(directory: Path, digest: str) -> BuildManifest | None:
    """The manifest of an existing build with this digest whose artifacts are untouched.

    The sha256 was taken when the build wrote each file; a file whose size and
    mtime still match is the file that was hashed."""
    try:
        manifest = BuildManifest.read(directory)
    except ManifestError:
        return None
    if manifest is None or manifest.input_digest != digest or not manifest.unchanged(directory):
        return None
    return manifest


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
    """One role set through Packer: the cached image, or a fresh build."""
    checksum = options.iso_checksum or loaded.config.os.install.iso_checksum
    lock = mirror_lock_digest(options.mirror)
    digest = input_digest(loaded, roles, packer_version, checksum, options.target, lock)
    run = BuildRun(loaded, roles, options, packer_version, progress, checksum, digest)
    cached = _cached(run)
    if cached is not None:
        return cached
    _require_tools(run)
    _check_local_iso(run)
    _check_packages(run)
    _prepare_iso(run)
    return _build(run)


def _check_packages(run: BuildRun) -> None:
    """The packages can be had (a mirror, or repositories that answer and hold them).
    A dry run records the verdict instead of stopping."""
    if not run.options.preflight:
        run.preflight = "skipped (--no-preflight)"
        return
    run.emit(EventKind.STEP, "checking packages", 0.0)
    try:
        run.preflight = "ok: " + check_sources(run.loaded, run.roles, run.options.mirror)
    except UserError as exc:
        if not run.options.dry_run:
            raise
        run.preflight = f"failed: {exc.message}"


def _cached(run: BuildRun) -> BuildResult | None:
    """The existing build, when it is up to date (and verified, if --verify asks for that)."""
    if run.options.force:
        return None
    manifest = cached_result(run.final, run.digest)
    if manifest is None or (run.options.verify and not manifest.verified):
        return None
    run.emit(EventKind.CACHED, str(run.final), 0.0)
    return BuildResult(run.roles, run.final, True, run.digest, manifest)


def _require_tools(run: BuildRun) -> None:
    for program in ("packer", "ssh-keygen"):
        proc.require(program)
    if run.options.target is Target.QEMU:
        proc.require("qemu-system-x86_64")


def _iso_source(run: BuildRun) -> str:
    return run.options.iso or run.loaded.config.os.install.iso_url


def _check_local_iso(run: BuildRun) -> None:
    """What the user typed first: the checksum's form, and an ISO that is a local file
    (verified now; a URL is fetched only after the preflight)."""
    source_iso.parse_checksum(run.checksum)
    if run.options.target is Target.QEMU and not source_iso.is_url(_iso_source(run)):
        run.emit(EventKind.STEP, "verifying ISO", 0.0)
        run.iso = source_iso.resolve_iso(_iso_source(run), run.checksum)


def _prepare_iso(run: BuildRun) -> None:
    """A qemu build's verified ISO, accelerator and free space (a dry run: what is known)."""
    if run.options.target is not Target.QEMU:
        return
    if run.options.dry_run:
        _plan_accelerator(run, _iso_source(run))
        return
    if run.iso is None:
        run.emit(EventKind.STEP, "fetching ISO", 0.0)
        run.iso = source_iso.resolve_iso(_iso_source(run), run.checksum)
    _choose_accelerator(run, run.iso)
    if fsutil.free_bytes(run.options.output) < MIN_FREE_BYTES:
        raise UserError(f"{run.options.output}: less than 4 GiB free: not enough for a build")


def _choose_accelerator(run: BuildRun, iso: Path) -> None:
    """KVM if it boots the ISO's own kernel here; else TCG, with a warning (or a refusal)."""
    choice = accel.choose_for_iso(
        iso, source_iso.parse_checksum(run.checksum), source_iso.cache_dir()
    )
    run.accelerator = choice.accelerator
    if choice.works:
        return
    if run.options.require_kvm:
        raise UserError(f"KVM does not work here ({choice.detail}) and --require-kvm is set")
    run.emit(
        EventKind.WARNING,
        f"KVM does not work here ({choice.detail}): building with TCG, much slower; "
        f"timeouts raised {TCG_TIMEOUT_FACTOR}x",
        0.0,
    )


def _plan_accelerator(run: BuildRun, source: str) -> None:
    """A dry run's accelerator, from what is known without downloading or booting."""
    run.iso = run.iso or source_iso.local_iso(source, run.checksum)
    iso_sha256 = source_iso.parse_checksum(run.checksum)
    known = accel.remembered(iso_sha256, source_iso.cache_dir())
    if known is not None:
        run.accelerator = known.accelerator
        return
    run.accelerator = "kvm"  # tried first, by booting the ISO's kernel
    unknown = ["whether KVM works: the build boots the ISO's own kernel to find out"]
    if run.iso is None:
        unknown.append(f"the ISO ({source}): not downloaded; the build fetches and verifies it")
    run.unknown = tuple(unknown)


def _build(run: BuildRun) -> BuildResult:
    """In a fresh work directory beside the output: render, run Packer, finish, install."""
    prefix = f".{run.roles.slug}.build-"
    if run.options.dry_run:  # writes nothing into the output directory
        run.work = Path(tempfile.mkdtemp(prefix=prefix)).resolve()
    else:
        run.options.output.mkdir(parents=True, exist_ok=True)
        run.work = Path(tempfile.mkdtemp(prefix=prefix, dir=run.options.output)).resolve()
    # Packer puts its plugins' unix sockets in TMPDIR: socket paths are limited
    # to 108 bytes, so Packer gets a short one of its own, not the work directory.
    run.packer_tmp = Path(tempfile.mkdtemp(prefix="builder-packer-"))
    try:
        variables, log, command = _prepare(run)
        argv = packer.command_argv(command)
        arguments = variables.arguments()
        if run.options.dry_run:
            return BuildResult(
                run.roles,
                run.final,
                False,
                run.digest,
                None,
                argv,
                arguments,
                preflight=run.preflight,
                accelerator=run.accelerator,
                unknown=run.unknown,
            )
        _run_packer(run, command, log, variables)
        manifest = _finish(run)
        _install(run)
        return BuildResult(run.roles, run.final, False, run.digest, manifest, argv, arguments)
    except BaseException as exc:
        replacement = _after_failure(run, exc)
        if replacement is not None:
            raise replacement from exc
        raise
    finally:
        if run.options.checks is not None:
            run.options.checks.cleanup(run.packer_tmp)
        shutil.rmtree(run.work, ignore_errors=True)
        shutil.rmtree(run.packer_tmp, ignore_errors=True)


def _prepare(run: BuildRun) -> tuple[PackerVars, packer.PackerLog, Any]:
    """This build's key, its render, Packer's variables and its command (not yet run)."""
    key = generate_build_key(run.work / "key")
    port = _http_port(run)
    rendered = render_role(
        run.loaded,
        run.roles,
        packer_version=run.packer_version,
        build_key=key.public_line,
        verify=run.options.verify,
        offline_repo=(
            f"http://{QEMU_HOST_ADDRESS}:{port}/{MIRROR_PATH}/" if port is not None else None
        ),
        mirror=_mirror_on_instance(run),
    )
    rendered.write(run.render_dir)
    if port is not None and run.options.mirror is not None:
        (run.render_dir / MIRROR_PATH).symlink_to(run.options.mirror.resolve())
    variables = build_variables(run, key.private_key, port)
    log = packer.PackerLog(run.work / "build.log", run.roles.label, run.progress, run.started)
    log.path.touch()
    command = packer.build_command(
        run.render_dir / PACKER_TEMPLATE,
        variables,
        run.render_dir / PACKER_VARS,
        only=PACKER_SOURCE[run.options.target],
        on_error=run.options.on_error,
        env={
            "PACKER_LOG": "1",
            "PACKER_LOG_PATH": str(run.work / "packer-debug.log"),
            "TMPDIR": str(run.packer_tmp),
        },
        out=log,
    )
    return variables, log, command


def _mirror_on_instance(run: BuildRun) -> bool:
    """An AMI build copies the mirror into the instance (a qemu build serves it)."""
    return run.options.mirror is not None and run.options.target is Target.AMI


def _http_port(run: BuildRun) -> int | None:
    """One fixed port for Packer's HTTP server when it serves a mirror to the installer
    (the kickstart names it); else Packer picks one from its default range."""
    if run.options.mirror is None or run.options.target is not Target.QEMU:
        return None
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def build_variables(run: BuildRun, key: Path, http_port: int | None = None) -> PackerVars:
    """The `-var` values of this build; the rest come from build.pkrvars.json."""
    checks = run.options.checks
    tcg_timeout = f"{ssh_timeout_seconds(run.loaded) * TCG_TIMEOUT_FACTOR}s"
    return PackerVars(
        http_directory=str(run.render_dir),
        provision_script=str(run.render_dir / PROVISION),
        ssh_private_key_file=str(key),
        output_directory=str(run.work / "packer"),
        serial_log=str(run.work / "serial.log"),
        manifest=str(run.work / "packer-manifest.json"),
        accelerator=run.accelerator,
        iso_checksum=run.checksum,
        headless=not run.options.headful,
        iso_url=str(run.iso) if run.iso is not None else None,
        http_port_min=http_port,
        http_port_max=http_port,
        mirror_directory=(
            str(run.options.mirror.resolve())
            if run.options.mirror is not None and _mirror_on_instance(run)
            else None
        ),
        ssh_timeout=tcg_timeout if run.accelerator == "tcg" else None,
        verify_command=(
            checks.command(run.loaded, run.roles, run.work, key, run.packer_tmp)
            if checks is not None
            else None
        ),
    )


def _run_packer(run: BuildRun, command: Any, log: packer.PackerLog, variables: PackerVars) -> None:
    """Packer in the background while the installer's serial log is followed: its progress
    as steps, and an installer error stops Packer (by its pid) at once."""
    run.emit(EventKind.START, str(log.path), 0.0)
    run.started_at = clock.utc_now()
    running = command(_bg=True)
    done = threading.Event()
    waiter = threading.Thread(target=_wait_quietly, args=(running, done), daemon=True)
    waiter.start()
    console = InstallerLog(run.work / "serial.log")
    while not done.wait(SERIAL_POLL_SECONDS):
        for step in console.poll():
            run.emit(EventKind.STEP, step)
        if console.error is not None:
            _stop_packer(int(running.pid), done)
            raise BuildFailed(
                run.roles.label,
                f"the installer stopped: {console.error}",
                console.tail(12),
                [],
            )
    for step in console.poll():
        run.emit(EventKind.STEP, step)
    exit_code = int(running.exit_code)
    if exit_code != 0:
        raise _explain_failure(run, exit_code, log, variables, console)


def _wait_quietly(running: Any, done: threading.Event) -> None:
    """Wait for Packer; a signal exit (ours) is not an error here."""
    try:
        running.wait()
    except Exception:  # noqa: S110 - sh raises for a death by signal; the caller knows
        pass
    finally:
        done.set()


def _stop_packer(pid: int, done: threading.Event) -> None:
    """SIGINT to Packer's process group, as Ctrl-C in a terminal sends it (sh starts Packer
    in a session of its own, so its pid is the group's id): Packer's panicwrap parent
    ignores a SIGINT of its own, its child cancels the build and QEMU stops. SIGKILL to
    the group if it has not ended in time."""
    for sig, grace in ((signal.SIGINT, PACKER_STOP_SECONDS), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)
        if done.wait(grace):
            return


def _explain_failure(
    run: BuildRun,
    exit_code: int,
    log: packer.PackerLog,
    variables: PackerVars,
    console: InstallerLog | None = None,
) -> BuildFailed:
    """Why Packer failed, in words where we know (the installer's error, no SSH in time,
    failed specs), and the end of its log (or the failed specs)."""
    message = f"packer build failed with exit code {exit_code}"
    tail = log.tail(12)
    if console is not None and console.error is not None:
        return BuildFailed(
            run.roles.label, f"the installer stopped: {console.error}", console.tail(12), []
        )
    if any("Timeout waiting for SSH" in line for line in log.lines):
        waited = variables.ssh_timeout or run.loaded.config.os.packer.ssh_timeout
        message = (
            f"the installed system did not answer SSH (root, this build's key) within "
            f"{waited}: the serial console log shows what it did"
        )
    failed_specs = run.options.checks.failures(run.work) if run.options.checks else []
    if failed_specs:
        message = f"the image failed {len(failed_specs)} of its specs; nothing was kept"
        tail = failed_specs[-12:]
    return BuildFailed(run.roles.label, message, tail, [])


def _after_failure(run: BuildRun, exc: BaseException) -> BaseException | None:
    """The logs kept in output/SLUG.failed/, a `failed` event; the error to raise instead."""
    logs = _keep_logs(run)
    replacement: BaseException | None = None
    if isinstance(exc, BuildFailed):
        exc.logs = logs
    elif isinstance(exc, OSError) and exc.errno == 28:
        replacement = UserError(f"{run.options.output}: disk full during the build")
    shown = replacement or exc
    detail = shown.message if isinstance(shown, BuilderError) else str(shown)
    run.emit(EventKind.FAILED, detail or type(shown).__name__)
    return replacement


def _keep_logs(run: BuildRun) -> list[Path]:
    if not run.work.exists():
        return []
    shutil.rmtree(run.failed_dir, ignore_errors=True)
    run.failed_dir.mkdir(parents=True)
    names = [*LOGS, run.options.checks.report_name] if run.options.checks else list(LOGS)
    kept = []
    for name in names:
        if (run.work / name).exists():
            shutil.move(str(run.work / name), run.failed_dir / name)
            kept.append(run.failed_dir / name)
    return kept


def _finish(run: BuildRun) -> BuildManifest:
    """The images converted and checksummed, the manifest written, the render put away."""
    packer_manifest = json.loads((run.work / "packer-manifest.json").read_text())
    artifacts = _convert(run) if run.options.target is Target.QEMU else ()
    qemu = proc.run(["qemu-system-x86_64", "--version"], check=False).stdout.splitlines()
    manifest = BuildManifest(
        role=run.roles.label,
        roles=run.roles.names,
        target=str(run.options.target),
        input_digest=run.digest,
        source_iso=SourceIso(
            str(run.iso) if run.iso else None, source_iso.parse_checksum(run.checksum)
        ),
        accelerator=run.accelerator,
        artifacts=artifacts,
        packer=PackerRecord(
            ".".join(map(str, run.packer_version)), tuple(packer_manifest.get("builds", []))
        ),
        tools=Tools(__version__, qemu[0] if qemu else None),
        started=run.started_at,
        finished=clock.utc_now(),
        verified=run.options.verify,
        mirror_lock=mirror_lock_digest(run.options.mirror),
    )
    for name in (KICKSTART, PROVISION):
        shutil.copy(run.render_dir / name, run.work / name)
    shutil.rmtree(run.render_dir)
    shutil.rmtree(run.work / "key")
    manifest.write(run.work)
    return manifest


def _convert(run: BuildRun) -> tuple[Artifact, ...]:
    """Packer's qcow2 beside a raw copy, both checksummed."""
    run.emit(EventKind.STEP, "converting to raw")
    qcow2 = run.work / image_file(run.roles.slug, ImageFormat.QCOW2)
    os.replace(run.work / "packer" / qcow2.name, qcow2)
    raw = run.work / image_file(run.roles.slug, ImageFormat.RAW)
    proc.run(["qemu-img", "convert", "-O", "raw", str(qcow2), str(raw)])
    run.emit(EventKind.STEP, "checksumming")
    artifacts = tuple(
        Artifact(path.name, fmt, fsutil.sha256_of(path), Fingerprint.of(path))
        for path, fmt in ((qcow2, ImageFormat.QCOW2), (raw, ImageFormat.RAW))
    )
    shutil.rmtree(run.work / "packer", ignore_errors=True)
    return artifacts


def _install(run: BuildRun) -> None:
    """The work directory becomes output/SLUG/; an installer ISO made there is carried over."""
    installer = installer_path(run.options.output, run.roles)
    if installer.exists():
        os.replace(installer, run.work / installer.name)
    fsutil.swap_dir(run.work, run.final)
    shutil.rmtree(run.failed_dir, ignore_errors=True)
    run.emit(EventKind.DONE, str(run.final))


def build_installer(
    loaded: LoadedConfig, roles: RoleSet, options: BuildOptions, progress: Progress
) -> BuildResult:
    """--target iso: OUT/SLUG/SLUG-installer.iso, through the installer remaster."""
    started = time.monotonic()
    iso_options = IsoOptions(
        iso=options.iso,
        iso_checksum=options.iso_checksum,
        output=options.output,
        repo_dir=options.repo_dir,
        mirror=options.mirror,
    )
    try:
        written = build_installer_iso(loaded, roles, iso_options)
    except UserError:
        raise  # bad input: its one line says it all
    except BuilderError as exc:
        progress.emit(Event(roles.label, EventKind.FAILED, exc.message, time.monotonic() - started))
        raise
    progress.emit(Event(roles.label, EventKind.DONE, str(written), time.monotonic() - started))
    return BuildResult(roles, written.parent, False, "", installer_iso=written)


def build_all(
    loaded: LoadedConfig,
    role_sets: list[RoleSet],
    options: BuildOptions,
    packer_version: tuple[int, int, int],
    progress: Progress,
) -> list[BuildResult]:
    """Several role sets build in parallel, each with its own work directory and log (an
    installer ISO takes seconds: those are written one after the other)."""
    if options.target is Target.ISO:
        return [build_installer(loaded, roles, options, progress) for roles in role_sets]
    if len(role_sets) == 1:
        return [build_one(loaded, role_sets[0], options, packer_version, progress)]
    with ThreadPoolExecutor(max_workers=len(role_sets)) as pool:
        futures = [
            pool.submit(build_one, loaded, roles, options, packer_version, progress)
            for roles in role_sets
        ]
        return [future.result() for future in futures]
