"""The bad-input catalogue: one clear line (file, line, key), exit 2, nothing written."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from builder.fsutil import sha256_of
from tests.conftest import CliRun
from tests.installer_media import build_rpm, checksum_option, tiny_installer_iso


@dataclass(frozen=True)
class Case:
    name: str
    file: str
    old: str
    new: str
    key: str  # the key path the error must name ("" when none)
    words: str  # what the message must say
    anchor: str | None = None  # the line the error must point at; default: new's first line


CASES = [
    Case(
        "yaml syntax",
        "cluster.yaml",
        "roles: [slave]",
        "roles: [slave",
        "",
        "YAML syntax error",
        anchor=None,
    ),
    Case(
        "unknown key",
        "os.yaml",
        "timezone: UTC",
        "timezone: UTC\ncolour: blue",
        "colour",
        "unknown key",
        anchor="colour: blue",
    ),
    Case("wrong type", "os.yaml", "size_gb: 20", "size_gb: big", "disk.size_gb", "valid integer"),
    Case(
        "invalid hostname",
        "cluster.yaml",
        "hostname: test167",
        "hostname: test_167",
        "nodes[1].hostname",
        "not a valid hostname",
    ),
    Case(
        "invalid ip",
        "cluster.yaml",
        "ip: 10.86.255.167",
        "ip: 10.86.255.300",
        "nodes[1].ip",
        "not a valid IPv4 address",
    ),
    Case(
        "duplicate hostname",
        "cluster.yaml",
        "hostname: test167",
        "hostname: test166",
        "nodes[1].hostname",
        "duplicate hostname 'test166'",
    ),
    Case(
        "duplicate ip",
        "cluster.yaml",
        "ip: 10.86.255.167",
        "ip: 10.86.255.166",
        "nodes[1].ip",
        "duplicate ip",
    ),
    Case(
        "no master",
        "cluster.yaml",
        "roles: [master, slave]",
        "roles: [slave]",
        "nodes",
        "no node has the 'master' role",
        anchor="nodes:",
    ),
    Case(
        "unknown role",
        "cluster.yaml",
        "roles: [slave]",
        "roles: [gateway]",
        "nodes[1].roles[0]",
        "unknown role 'gateway'",
    ),
    Case(
        "ip outside network",
        "cluster.yaml",
        "ip: 10.86.255.167",
        "ip: 10.86.254.167",
        "nodes[1].ip",
        "outside the cluster's network",
    ),
    Case(
        "port out of range",
        "roles/slave.yaml",
        'ports: ["31000-32000"]',
        'ports: ["31000-32000", 70000]',
        "ports[1]",
        "port 70000 is outside 1-65535",
    ),
    Case(
        "unquoted mode",
        "roles/slave.yaml",
        'content: "5mins\\n"',
        'content: "5mins\\n"\n    mode: 0644',
        "files[1].mode",
        "quote it",
        anchor="mode: 0644",
    ),
    Case(
        "url injection",
        "os.yaml",
        "url: http://vault.centos.org/7.9.2009/os/x86_64/",
        "url: http://vault.centos.org/$(reboot)/",
        "install.url",
        "URL without spaces",
    ),
    Case(
        "package injection",
        "roles/master.yaml",
        "  - chronos",
        "  - chronos; rm -rf /",
        "packages[4]",
        "package or @group name",
    ),
    Case(
        "missing packages",
        "roles/slave.yaml",
        "packages: [mesos, docker]",
        "",
        "packages",
        "required key is missing",
        anchor="description:",
    ),
    Case(
        "password in plain text",
        "os.yaml",
        "selinux: enforcing",
        "selinux: enforcing\nroot_password_hash: hunter2",
        "root_password_hash",
        "SHA-512 crypt hash",
        anchor="root_password_hash",
    ),
    Case(
        "gpgcheck without key",
        "roles/slave.yaml",
        "    gpgkey: [http://repos.mesosphere.io/el/RPM-GPG-KEY-mesosphere]\n\npackages",
        "\npackages",
        "repos[0]",
        "gpgcheck on but no gpgkey",
        anchor="  - name: mesosphere",
    ),
]


def _edit(config: Path, case: Case) -> tuple[str, int | None]:
    path = config / case.file
    text = path.read_text()
    assert case.old in text, f"{case.name}: {case.old!r} not in {case.file}"
    start = text.index(case.old)
    text = text.replace(case.old, case.new, 1)
    path.write_text(text)
    if case.name == "yaml syntax":
        return text, None
    anchor = case.anchor if case.anchor is not None else (case.new.splitlines() or [""])[0]
    if anchor and anchor in case.new:  # the edited place itself
        return text, text[: start + case.new.index(anchor)].count("\n") + 1
    lines = text.splitlines()
    return text, next(i + 1 for i, line in enumerate(lines) if anchor in line)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input_is_one_located_line_and_exit_2(
    case: Case, config_copy: Path, builder_cli: CliRun, tmp_path: Path
) -> None:
    _, line = _edit(config_copy, case)
    out = tmp_path / "out"
    result = builder_cli("--config", str(config_copy), "render", "master", "--out", str(out))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists(), "nothing may be written on bad input"
    errors = [entry for entry in result.stderr.splitlines() if entry.startswith("error:")]
    assert len(errors) == 1, result.stderr
    where = f"{case.file}" if line is None else f"{case.file}:{line}:"
    assert where in errors[0], errors[0]
    if case.key:
        assert f" {case.key}: " in errors[0], errors[0]
    assert case.words in errors[0], errors[0]


def test_every_problem_is_reported_at_once(
    config_copy: Path, builder_cli: CliRun, tmp_path: Path
) -> None:
    for case in (CASES[1], CASES[4]):  # os.yaml unknown key, cluster.yaml bad ip
        _edit(config_copy, case)
    result = builder_cli("--config", str(config_copy), "render", "slave")
    assert result.returncode == 2
    errors = [entry for entry in result.stderr.splitlines() if entry.startswith("error:")]
    assert len(errors) == 2, result.stderr
    assert any("os.yaml" in e and "colour" in e for e in errors)
    assert any("cluster.yaml" in e and "nodes[1].ip" in e for e in errors)


def test_missing_file(config_copy: Path, builder_cli: CliRun) -> None:
    (config_copy / "cluster.yaml").unlink()
    result = builder_cli("--config", str(config_copy), "render", "master")
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("error: ")
    assert result.stderr.rstrip().endswith("roles-config/cluster.yaml: file not found")


def test_missing_config_directory(builder_cli: CliRun, tmp_path: Path) -> None:
    result = builder_cli("--config", str(tmp_path / "nope"), "render", "master")
    assert result.returncode == 2
    assert "config directory not found" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_role_on_the_command_line(builder_cli: CliRun, tmp_path: Path) -> None:
    result = builder_cli("render", "gateway", "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: ROLE: unknown role 'gateway' (roles are: master, slave)"
    )
    assert not (tmp_path / "out").exists()


def test_roles_that_disagree_on_a_file(config_copy: Path, builder_cli: CliRun) -> None:
    master = config_copy / "roles" / "master.yaml"
    master.write_text(
        master.read_text().replace(
            "  - path: /etc/mesos-master/work_dir",
            '  - path: /etc/mesos-slave/containerizers\n    content: "mesos\\n"\n'
            "  - path: /etc/mesos-master/work_dir",
        )
    )
    assert builder_cli("--config", str(config_copy), "render", "master").returncode == 0
    result = builder_cli("--config", str(config_copy), "render", "master,slave")
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert "roles/slave.yaml:" in lines[0]
    assert "roles master and slave disagree on file /etc/mesos-slave/containerizers" in lines[0]


def test_even_master_count_is_a_warning(config_copy: Path, builder_cli: CliRun) -> None:
    cluster = config_copy / "cluster.yaml"
    cluster.write_text(cluster.read_text().replace("roles: [slave]", "roles: [master, slave]"))
    result = builder_cli("--config", str(config_copy), "render", "slave")
    assert result.returncode == 0, result.stderr
    assert "warning:" in result.stderr
    assert "2 masters" in result.stderr


def test_unwritable_output_is_a_user_error(builder_cli: CliRun, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = builder_cli("render", "master", "--out", str(blocker / "out"))
    assert result.returncode == 2
    assert result.stderr.startswith("error: ")
    assert "Traceback" not in result.stderr


# ---- builder build --target iso ------------------------------------------------------------
def _iso_case(tmp_path: Path, case: str) -> tuple[list[str], str]:
    """The command line of one bad-input case for the installer ISO, and what it must say."""
    work = tmp_path / "in"
    work.mkdir()
    args = ["build", "slave", "--target", "iso", "--out", str(tmp_path / "out")]
    if case == "source missing":
        return [*args, "--iso", str(work / "none.iso"), "--iso-checksum", "sha256:" + "0" * 64], (
            "no such ISO file"
        )
    if case == "not an ISO":
        junk = work / "junk.iso"
        junk.write_bytes(b"\x00" * 40000)
        return [
            *args,
            "--iso",
            str(junk),
            "--iso-checksum",
            checksum_option(junk),
        ], "not an ISO 9660 image"
    omit = {"no isolinux.cfg": "isolinux/isolinux.cfg", "no grub.cfg": "EFI/BOOT/grub.cfg"}
    iso = tiny_installer_iso(work, omit=[omit[case]] if case in omit else [], pad_mib=8)
    args += ["--iso", str(iso)]
    if case in omit:
        return [
            *args,
            "--iso-checksum",
            checksum_option(iso),
        ], f"not a CentOS 7 installer ISO: no /{omit[case]}"
    if case == "checksum mismatch":
        return [*args, "--iso-checksum", "sha256:" + "ab" * 32], "does not match the expected"
    args += ["--iso-checksum", checksum_option(iso)]
    if case == "empty repo dir":
        (work / "rpms").mkdir()
        (work / "rpms" / "README").write_text("no RPMs here\n")
        return [*args, "--repo-dir", str(work / "rpms")], "no RPM files in --repo-dir"
    if case == "missing package":
        build_rpm(work / "rpms", "mesos")
        return [*args, "--repo-dir", str(work / "rpms")], "no RPM provides cloud-init, "
    if case == "output not writable":
        (tmp_path / "file").write_text("not a directory\n")
        args[args.index("--out") + 1] = str(tmp_path / "file" / "out")
        return args, "cannot write"
    raise AssertionError(case)


ISO_CASES = [
    "source missing",
    "not an ISO",
    "no isolinux.cfg",
    "no grub.cfg",
    "checksum mismatch",
    "empty repo dir",
    "missing package",
    "output not writable",
]


@pytest.mark.parametrize("case", ISO_CASES)
def test_bad_installer_iso_input(case: str, builder_cli: CliRun, tmp_path: Path) -> None:
    args, words = _iso_case(tmp_path, case)
    result = builder_cli(*args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    errors = [entry for entry in result.stderr.splitlines() if entry.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert words in errors[0], result.stderr
    assert not (tmp_path / "out").exists(), "nothing may be written on bad input"


def test_repo_dir_is_only_for_the_installer_iso(builder_cli: CliRun, tmp_path: Path) -> None:
    result = builder_cli("build", "slave", "--repo-dir", str(tmp_path), "--dry-run")
    assert result.returncode == 2
    assert result.stderr.splitlines() == ["error: --repo-dir is for --target iso"]


@pytest.mark.parametrize(
    ("flag", "words"),
    [("--verify", "--verify runs inside a Packer build"), ("--dry-run", "--dry-run is for Packer")],
)
def test_packer_only_flags_with_the_installer_iso(
    builder_cli: CliRun, tmp_path: Path, flag: str, words: str
) -> None:
    iso = tmp_path / "source.iso"
    iso.write_bytes(b"never read")
    result = builder_cli(
        "build",
        "slave",
        "--target",
        "iso",
        "--iso",
        str(iso),
        "--iso-checksum",
        "sha256:" + "0" * 64,
        flag,
        "--out",
        str(tmp_path / "out"),
    )
    assert result.returncode == 2
    errors = [entry for entry in result.stderr.splitlines() if entry.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith(f"error: {words}"), result.stderr
    assert not (tmp_path / "out").exists()


def test_installer_iso_on_a_full_disk(builder_cli: CliRun, tmp_path: Path) -> None:
    """A real small filesystem (tmpfs, 4 MiB) as --out: refused before writing, nothing left."""
    iso = tiny_installer_iso(tmp_path, pad_mib=8)
    out = tmp_path / "small"
    out.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(out)], check=True)
    try:
        result = builder_cli(
            "build",
            "slave",
            "--target",
            "iso",
            "--iso",
            str(iso),
            "--iso-checksum",
            checksum_option(iso),
            "--out",
            str(out),
        )
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
        errors = [entry for entry in result.stderr.splitlines() if entry.startswith("error:")]
        assert len(errors) == 1, result.stderr
        assert "not enough free space" in errors[0], result.stderr
        assert list(out.iterdir()) == []
    finally:
        subprocess.run(["umount", str(out)], check=True)


# ---- a failing tool is no bad input: exit 1 ----------------------------------------------
def _damaged_installer_iso(work: Path) -> Path:
    """A tiny installer ISO whose tail is gone: its tree and boot files (at the start)
    read fine, so the layout is read; /padding.bin's data (up to the end) cannot be."""
    iso = tiny_installer_iso(work, pad_mib=8)
    with iso.open("r+b") as handle:
        handle.truncate(4 * 1024**2)
        # Blank the primary GPT header's signature ("EFI PART" at byte 512): else xorriso
        # looks for the backup header in the cut-off last block as it loads the ISO.
        handle.seek(512)
        assert handle.read(8) == b"EFI PART"
        handle.seek(512)
        handle.write(bytes(8))
    return iso


def test_xorriso_failing_while_writing_the_installer_iso(
    builder_cli: CliRun, tmp_path: Path
) -> None:
    """A real xorriso failure: it cannot read the source's file data as it writes.
    Exit 1, the last line xorriso said, the command; nothing left in --out."""
    iso = _damaged_installer_iso(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep").write_text("mine")
    args = ["build", "slave", "--target", "iso", "--iso", str(iso), "--out", str(out)]
    result = builder_cli(*args, "--iso-checksum", checksum_option(iso))
    assert result.returncode == 1, result.stderr
    # The progress lines of the build come first (no terminal: plain lines).
    *progress, error, command = result.stderr.splitlines()
    # one line, whatever the seconds on a loaded host
    [failed] = progress
    assert re.fullmatch(r"slave: failed \(\d+ s\)", failed), failed
    assert error == (
        "error: xorriso failed with exit code 32: "
        "libisofs: MISHAP : Read error in file /padding.bin."
    )
    # The writing step: the remaster into a temporary sibling of the installer ISO.
    assert command.startswith(f"  command: xorriso -stdio_sync off -indev {iso} -outdev {out}/")
    assert [p.name for p in out.iterdir()] == ["keep"]
    # The same command with a wrong checksum is bad input: exit 2, one line, before xorriso.
    wrong = builder_cli(*args, "--iso-checksum", "sha256:" + "ab" * 32)
    assert wrong.returncode == 2, wrong.stderr
    error, hint = wrong.stderr.splitlines()
    assert error == (
        f"error: {iso}: sha256 {sha256_of(iso)} does not match the expected {'ab' * 32}"
    )
    assert hint.startswith("hint: a different or damaged ISO")
    assert [p.name for p in out.iterdir()] == ["keep"]
