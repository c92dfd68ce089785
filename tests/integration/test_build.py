"""`builder build` end to end: real Packer and QEMU through the product's template.

The stand-in installer ISO (CentOS 7's layout, a busybox "anaconda") is what
Packer boots: it types the same boot command as for CentOS, serves the rendered
kickstart, waits for SSH to the installed system with this build's key, runs
`provision.sh seal`, shuts down and exports. The disk is then read back.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from builder.fsutil import sha256_of
from builder.image.build import QEMU_HOST_ADDRESS
from tests.conftest import CliRun
from tests.installer_media import guest_config
from tests.integration.rpmrepo import RpmRepos, dead_url, offline_build, write_config
from tests.integration.standin import DiskReader
from tests.integration.vmslots import vm_slots

pytestmark = [pytest.mark.integration, pytest.mark.vm, pytest.mark.usefixtures("one_vm_slot")]
ISO_NAME = "CentOS-7-x86_64-Minimal-standin.iso"
PROVIDE_ONLY = "jre-1.8.0-headless"  # java-1.8.0-openjdk-headless provides it


@pytest.fixture(scope="module")
def built(
    standin: Path, rpmrepo: RpmRepos, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, object]:
    """One slave build for the module: its directory, config, CLI output and events.

    It installs from a mirror (builder mirror, from the stand-in repositories) with
    every configured repository dead: a build needs no network."""
    root = tmp_path_factory.mktemp("build")
    # master,slave: the mirror also holds the JRE, which the failing build below names
    config, mirror = offline_build(rpmrepo, root)
    iso = standin / ISO_NAME
    checksum = f"sha256:{sha256_of(iso)}"
    args = [
        "--config",
        str(config),
        "build",
        "slave",
        "--verify",
        "--iso",
        str(iso),
        "--iso-checksum",
        checksum,
        "--mirror",
        str(mirror),
        "--out",
        str(root / "output"),
    ]
    earlier = root / "output" / "slave"  # an earlier build's leftover and an installer ISO
    earlier.mkdir(parents=True)
    (earlier / "old-image.qcow2").write_bytes(b"stale")
    (earlier / "slave-installer.iso").write_bytes(b"made by --target iso")
    # Beside it, at the same time (one build's wall time for two): a --verify build
    # of an image that does not meet its contract: the role names a virtual provide
    # (jre-1.8.0-headless); the installer resolves it and installs the JRE's package,
    # but the RPM database holds no package by that name (as yum and rpm on CentOS).
    broken = root / "broken-config"
    shutil.copytree(config, broken)
    slave = broken / "roles" / "slave.yaml"
    slave.write_text(
        slave.read_text().replace(
            "packages: [mesos, docker]", f"packages: [mesos, docker, {PROVIDE_ONLY}]"
        )
    )
    # Two VMs at once: the module holds one slot (one_vm_slot), the second build another.
    with vm_slots(1):
        failing = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "builder",
                "--config",
                str(broken),
                *args[2:-2],
                "--no-preflight",
                "--out",
                str(root / "broken-output"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=root,
            stdin=subprocess.DEVNULL,
        )
        try:
            result = subprocess.run(
                [sys.executable, "-m", "builder", *args, "--json"],
                capture_output=True,
                text=True,
                cwd=root,
                timeout=3600,
                check=False,
                stdin=subprocess.DEVNULL,
            )
            failed_out, failed_err = failing.communicate(timeout=3600)
        finally:
            if failing.poll() is None:
                failing.kill()
                failing.wait()
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    failed = (failing.returncode, failed_out + failed_err, root / "broken-output")
    return {
        "root": root,
        "config": config,
        "args": args,
        "events": events,
        "mirror": mirror,
        "output": root / "output" / "slave",
        "failing": failed,
    }


def test_progress_went_through_every_step(built: dict[str, object]) -> None:
    events = built["events"]
    assert isinstance(events, list)
    steps = [e["detail"] for e in events if e["event"] == "step"]
    wanted = [
        "booting",
        "typing boot command",
        "installing, waiting for SSH",
        "connected",
        "provisioning",
        "shutting down",
        "exporting",
        "converting to raw",
    ]
    assert [s for s in steps if s in wanted] == wanted
    assert events[-1]["event"] == "done"


def test_manifest_describes_the_artifacts(built: dict[str, object]) -> None:
    output = built["output"]
    assert isinstance(output, Path)
    manifest = json.loads((output / "manifest.json").read_text())
    assert manifest["role"] == "slave"
    assert manifest["target"] == "qemu"
    assert len(manifest["input_digest"]) == 64
    assert manifest["packer"]["version"] == "1.6.6"
    assert manifest["packer"]["builds"][0]["builder_type"] == "qemu"
    formats = {a["format"]: a for a in manifest["artifacts"]}
    assert set(formats) == {"qcow2", "raw"}
    qcow2 = output / formats["qcow2"]["path"]
    assert sha256_of(qcow2) == formats["qcow2"]["sha256"]
    assert (output / formats["raw"]["path"]).stat().st_size == 8 * 1024**3
    assert not list(output.parent.glob(".slave.build-*")), "no work directory is left"


def test_a_build_replaces_the_old_image_and_keeps_the_installer_iso(
    built: dict[str, object],
) -> None:
    output = built["output"]
    assert isinstance(output, Path)
    assert not (output / "old-image.qcow2").exists()
    assert (output / "slave-installer.iso").read_bytes() == b"made by --target iso"


def test_the_image_is_configured_and_sealed(built: dict[str, object], tmp_path: Path) -> None:
    output = built["output"]
    assert isinstance(output, Path)
    reader = DiskReader(output / "mesos-slave.qcow2", tmp_path)
    try:
        assert reader.read("/etc/mesos-slave/containerizers") == "docker,mesos\n"
        assert reader.read("/etc/mesos-slave/executor_registration_timeout") == "5mins\n"
        assert reader.read("/etc/builder/roles") == "slave\n"
        wants = "/etc/systemd/system/multi-user.target.wants"
        for unit in ("mesos-slave", "docker", "mesos-master", "marathon", "chronos"):
            assert reader.link(f"{wants}/{unit}.service") == "", f"{unit} is enabled"
        for unit in ("mesos-master", "marathon", "chronos", "zookeeper"):
            assert reader.link(f"/etc/systemd/system/{unit}.service") == "/dev/null", unit
        # The build key is gone, and so is everything a template must not carry.
        assert "builder-build-key" not in reader.read("/root/.ssh/authorized_keys")
        installed_ks = reader.read("/root/original-ks.cfg")
        assert "builder-build-key" not in installed_ks
        assert "%post --interpreter=/bin/bash --erroronfail" in installed_ks
        assert "ssh_host_" not in reader.debugfs("ls /etc/ssh")
        assert reader.read("/etc/machine-id") == ""
        assert "instance" not in reader.debugfs("ls /var/lib/cloud")
    finally:
        reader.close()


def test_the_image_specs_passed_inside_the_build(built: dict[str, object]) -> None:
    """--verify: the image layer ran over Packer's SSH connection, after seal, before export."""
    output = built["output"]
    assert isinstance(output, Path)
    assert json.loads((output / "manifest.json").read_text())["verified"] is True
    suite = ET.parse(output / "verify.xml").getroot().find("testsuite")  # noqa: S314 - ours
    assert suite is not None
    assert int(suite.get("tests", "0")) >= 20
    assert (suite.get("failures"), suite.get("errors"), suite.get("skipped")) == ("0", "0", "0")
    checks = [p.get("value") for p in suite.iter("property") if p.get("name") == "check"]
    for check in (
        "slave: package mesos",
        "/etc/mesos-slave/containerizers content",
        "unit marathon at boot",
        "firewall default zone public before first boot",
        "SELinux mode",
        "files holding the build key (builder-build-key)",
        "SSH host keys in /etc/ssh",
    ):
        assert check in checks
    log = (output / "build.log").read_text()
    # shell-local opens the connection before seal; the specs run over it after seal.
    connect, seal = log.index("Running local shell script"), log.index("builder-provision: seal")
    summary = log.index(f"{len(checks)} checks: {len(checks)} passed%!(PACKER_COMMA) 0 failed")
    assert connect < seal < summary < log.index("Gracefully halting")


def test_a_failing_spec_fails_the_build_and_keeps_nothing(built: dict[str, object]) -> None:
    """An image that does not meet its contract (a name the RPM database has no package of)."""
    failing = built["failing"]
    assert isinstance(failing, tuple)
    returncode, output, out = failing
    assert returncode == 1, output
    lines = output.splitlines()
    assert [line for line in lines if line.startswith("error:")] == [
        "error: slave: the image failed 1 of its specs; nothing was kept"
    ], output
    assert (
        f"  | FAIL slave: package {PROVIDE_ONLY}: expected 'installed', "
        f"found 'package {PROVIDE_ONLY} is not installed'" in lines
    )
    assert not (out / "slave").exists()
    assert not list(out.glob(".slave.build-*"))
    kept = sorted(path.name for path in (out / "slave.failed").iterdir())
    assert kept == ["build.log", "packer-debug.log", "serial.log", "verify.xml"]


def test_second_build_is_the_cached_image(built: dict[str, object], builder_cli: CliRun) -> None:
    args = built["args"]
    assert isinstance(args, list)
    output = built["output"]
    assert isinstance(output, Path)
    before = (output / "manifest.json").read_text()
    result = builder_cli(*args)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"slave: up to date: {output}/"
    assert (output / "manifest.json").read_text() == before


def test_a_role_change_rebuilds(built: dict[str, object], builder_cli: CliRun) -> None:
    args = built["args"]
    config = built["config"]
    assert isinstance(args, list)
    assert isinstance(config, Path)
    [dry] = json.loads(builder_cli(*args, "--dry-run").stdout)
    assert dry["up_to_date"] is True
    slave = config / "roles" / "slave.yaml"
    slave.write_text(slave.read_text().replace('content: "5mins\\n"', 'content: "10mins\\n"'))
    [changed] = json.loads(builder_cli(*args, "--dry-run").stdout)
    assert changed["up_to_date"] is False
    assert changed["input_digest"] != dry["input_digest"]
    assert changed["command"][:2] == [shutil.which("packer"), "build"]


def test_ssh_that_never_comes_up_fails_clearly(
    built: dict[str, object], builder_cli: CliRun, tmp_path: Path
) -> None:
    """SSH not up in time (20 s; the install takes longer): a clear failure, no image kept."""
    config = built["config"]
    args = built["args"]
    assert isinstance(config, Path)
    assert isinstance(args, list)
    short = tmp_path / "roles-config"
    shutil.copytree(config, short)
    os_yaml = short / "os.yaml"
    os_yaml.write_text(os_yaml.read_text().replace("ssh_timeout: 60m", "ssh_timeout: 5s"))
    out = tmp_path / "output"
    result = builder_cli("--config", str(short), *args[2:-2], "--out", str(out))
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    [error] = [line for line in lines if line.startswith("error:")]
    assert error == (
        "error: slave: the installed system did not answer SSH (root, this build's key) "
        "within 20s: the serial console log shows what it did"
    ), result.stderr
    assert "  | --> qemu.centos7: Timeout waiting for SSH." in lines
    serial = out / "slave.failed" / "serial.log"
    assert f"  log: {serial}" in lines
    # The VM's own console: the boot loader echoed the line Packer typed (how far the
    # installer got in 20 s depends on the host's load).
    assert "inst.ks=http://" in serial.read_text(errors="replace")
    assert not (out / "slave").exists()
    assert not list(out.glob(".slave.build-*"))


def test_packer_failure_is_reported_with_its_log(
    built: dict[str, object], builder_cli: CliRun, tmp_path: Path
) -> None:
    """Packer 1.6.6 refuses a template rendered for current Packer: exit 1, its words, the log."""
    args = built["args"]
    assert isinstance(args, list)
    out = tmp_path / "output"
    result = builder_cli(*args[:-2], "--out", str(out), "--packer-version", "1.11.2")
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert [line for line in lines if line.startswith("error:")] == [
        "error: slave: packer build failed with exit code 1"
    ]
    assert any("required_plugins" in line for line in lines if line.startswith("  | "))
    assert f"  log: {out / 'slave.failed' / 'build.log'}" in lines
    assert "Traceback" not in result.stderr
    assert not (out / "slave").exists()
    assert not list(out.glob(".slave.build-*"))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--iso-checksum", "sha256:" + "0" * 64], "does not match the expected"),
        (["--iso-checksum", "md5:abc"], "--iso-checksum must be sha256: and 64 hex digits"),
        ([], "--iso needs --iso-checksum sha256:HEX"),
    ],
)
def test_bad_iso_arguments(
    standin: Path, builder_cli: CliRun, tmp_path: Path, extra: list[str], message: str
) -> None:
    result = builder_cli(
        "build", "slave", "--iso", str(standin / ISO_NAME), *extra, "--out", str(tmp_path / "out")
    )
    assert result.returncode == 2
    [error] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert message in error
    assert not (tmp_path / "out" / "slave").exists()


def test_not_an_installer(builder_cli: CliRun, secured_copy: Path, tmp_path: Path) -> None:
    seeded = builder_cli("--config", str(secured_copy), "seed", "test167", "--out", "s")
    assert seeded.returncode == 0, seeded.stderr
    seed = tmp_path / "s" / "test167-cidata.iso"
    result = builder_cli(
        "build",
        "slave",
        "--iso",
        str(seed),
        "--iso-checksum",
        f"sha256:{sha256_of(seed)}",
        "--no-preflight",  # the default config's repositories (the vault) are not reachable
        "--out",
        "out",
    )
    assert result.returncode == 2
    assert f"error: {seed}: not an installer ISO: no kernel at " in result.stderr
    assert not (tmp_path / "out" / "slave").exists()


def test_missing_iso_file(builder_cli: CliRun, tmp_path: Path) -> None:
    result = builder_cli(
        "build",
        "slave",
        "--iso",
        str(tmp_path / "none.iso"),
        "--iso-checksum",
        "sha256:" + "0" * 64,
    )
    assert result.returncode == 2
    assert f"error: {tmp_path / 'none.iso'}: no such ISO file" in result.stderr.splitlines()


def test_missing_packer_names_the_package(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "builder", "build", "slave", "--target", "ami"],
        env={"PATH": str(empty), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: packer is not installed",
        "hint: install it with: apt-get install packer",
    ]


def test_require_kvm_stops_where_kvm_does_not_work(standin: Path, tmp_path: Path) -> None:
    """With the probe's verdict remembered as 'KVM hangs', --require-kvm stops before Packer."""
    iso = standin / ISO_NAME
    digest = sha256_of(iso)
    boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    cache = tmp_path / "cache" / "builder"
    cache.mkdir(parents=True)
    (cache / "accelerator.json").write_text(
        json.dumps({f"{boot_id}:{digest}": {"works": False, "detail": "vmlinuz did not start"}})
    )
    args = [
        "build",
        "slave",
        "--iso",
        str(iso),
        "--iso-checksum",
        f"sha256:{digest}",
        "--out",
        str(tmp_path / "out"),
    ]
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    result = subprocess.run(
        [sys.executable, "-m", "builder", *args, "--require-kvm", "--no-preflight"],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr
    expected = "error: KVM does not work here (vmlinuz did not start (remembered))"
    assert f"{expected} and --require-kvm is set" in result.stderr.splitlines()
    assert not (tmp_path / "out" / "slave").exists()
    if Path("/dev/kvm").exists():
        dry = subprocess.run(
            [sys.executable, "-m", "builder", *args, "--dry-run", "--no-preflight"],
            env=env,
            capture_output=True,
            text=True,
            cwd=tmp_path,
            check=True,
            timeout=300,
        )
        [plan] = json.loads(dry.stdout)
        assert plan["variables"]["accelerator"] == "tcg"
        assert plan["variables"]["ssh_timeout"] == "14400s"  # 60m, 4x under TCG


def test_the_build_installed_from_the_mirror_only(built: dict[str, object]) -> None:
    """The kickstart read the installer's media and the mirror Packer served, nothing else;
    the manifest names the lock, so a rebuild from it is the same set of packages."""
    output, mirror = built["output"], built["mirror"]
    assert isinstance(output, Path)
    assert isinstance(mirror, Path)
    kickstart = (output / "ks.cfg").read_text().splitlines()
    assert "cdrom" in kickstart
    [repo] = [line for line in kickstart if line.startswith("repo ")]
    assert repo.startswith("repo --name=builder-offline --baseurl=http://10.0.2.2:")
    assert repo.endswith("/mirror/")
    assert not [line for line in kickstart if line.startswith("url ")]
    manifest = json.loads((output / "manifest.json").read_text())
    lock = (mirror / "mirror.lock.json").read_bytes()
    assert manifest["mirror_lock"] == hashlib.sha256(lock).hexdigest()


def test_a_dead_repository_stops_the_build_before_anything_boots(
    rpmrepo: RpmRepos, builder_cli: CliRun, tmp_path: Path
) -> None:
    dead = dead_url()
    config = write_config(tmp_path / "roles-config", rpmrepo, urls={"mesosphere": dead})
    result = builder_cli("--config", str(config), "build", "slave", "--out", "out")
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: repository mesosphere ({dead}) does not answer: [Errno 111] Connection refused"
    ]
    assert not (tmp_path / "out").exists()


def test_a_dry_run_downloads_nothing_and_says_what_it_could_not_know(
    rpmrepo: RpmRepos, tmp_path: Path
) -> None:
    """os.yaml's ISO is a URL (the vault): a dry run neither fetches it nor boots anything."""
    config = write_config(tmp_path / "roles-config", rpmrepo)
    dead_config = write_config(tmp_path / "dead", rpmrepo, urls={"base": dead_url()})
    cache = tmp_path / "cache"
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}

    def dry(config_dir: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "builder",
                "--config",
                str(config_dir),
                "build",
                "slave",
                "--dry-run",
                "--out",
                str(tmp_path / "out"),
            ],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )

    result = dry(config)
    assert result.returncode == 0, result.stderr
    [plan] = json.loads(result.stdout)
    assert plan["preflight"].startswith("ok: ")
    assert re.fullmatch(r"ok: \d+ packages from base, extras, mesosphere", plan["preflight"])
    unknown = " ".join(plan["unknown_without_the_iso"])
    if Path("/dev/kvm").exists():
        assert plan["accelerator"] == "kvm"
        assert "whether KVM works" in unknown
    else:
        assert plan["accelerator"] == "tcg"
    assert "not downloaded" in unknown
    assert not list(cache.rglob("*.iso"))
    assert not (tmp_path / "out").exists()

    failed = dry(dead_config)
    assert failed.returncode == 2
    [plan] = json.loads(failed.stdout)
    assert plan["preflight"].startswith("failed: repository base (")
    assert failed.stderr.splitlines()[-1].startswith("error: repository base (")


# ---- the installer's errors, within seconds ------------------------------------------------------
INSTALLER_DEADLINE = 120.0  # seconds from `builder build` to its failure with the installer's words


def test_an_installer_error_fails_the_build_within_two_minutes(
    standin: Path, rpmrepo: RpmRepos, tmp_path: Path
) -> None:
    """Two builds at once, without the preflight: a repository that does not answer (a
    dead port on the host, as the VM reaches it), and a package no repository has. Each
    fails with the installer's own error line, long before the SSH timeout, and Packer
    and its VM are gone."""
    dead = dead_url().replace("127.0.0.1", QEMU_HOST_ADDRESS)
    configs = {
        "repo": guest_config(tmp_path / "repo-config", rpmrepo, urls={"mesosphere": dead}),
        "package": guest_config(tmp_path / "package-config", rpmrepo),
    }
    slave = configs["package"] / "roles" / "slave.yaml"
    slave.write_text(
        slave.read_text().replace(
            "packages: [mesos, docker]", "packages: [mesos, docker, mesos-dns]"
        )
    )
    iso = standin / ISO_NAME
    started = time.monotonic()
    runs = {
        case: subprocess.Popen(
            [
                sys.executable,
                "-m",
                "builder",
                "--config",
                str(config),
                "build",
                "slave",
                "--iso",
                str(iso),
                "--iso-checksum",
                f"sha256:{sha256_of(iso)}",
                "--no-preflight",
                "--out",
                str(tmp_path / case),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            stdin=subprocess.DEVNULL,
        )
        for case, config in configs.items()
    }
    results = {}
    try:
        for case, process in runs.items():
            out, err = process.communicate(timeout=600)
            results[case] = (process.returncode, out + err, time.monotonic() - started)
    finally:
        for process in runs.values():
            if process.poll() is None:
                process.kill()
                process.wait()
    errors = {
        "repo": "error: slave: the installer stopped: Cannot retrieve repository metadata "
        "(repomd.xml) for repository: mesosphere. Please verify its path and try again",
        "package": "error: slave: the installer stopped: You have specified that the package "
        "'mesos-dns' should be installed.  This package does not exist. Would you like to "
        "ignore this package and continue with installation?",
    }
    for case, (returncode, output, seconds) in results.items():
        print(f"{case}: failed after {seconds:.0f} s")  # the figure, with -s
        assert returncode == 1, output
        assert [line for line in output.splitlines() if line.startswith("error:")] == [
            errors[case]
        ], output
        assert seconds < INSTALLER_DEADLINE, f"{case}: {seconds:.0f} s"
        failed = tmp_path / case / "slave.failed"
        assert errors[case].split("stopped: ", 1)[1] in (failed / "serial.log").read_text()
        assert (failed / "build.log").exists()
        assert not (tmp_path / case / "slave").exists()
        assert not _processes_mentioning(str(tmp_path / case)), "Packer or QEMU left running"


def _processes_mentioning(text: str) -> list[int]:
    """Processes whose command line names `text` (read from /proc, nothing signalled)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if text in cmdline:
                found.append(int(entry.name))
    return found
