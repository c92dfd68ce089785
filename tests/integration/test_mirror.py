"""`builder mirror` against the stand-in repositories (tests/fixtures/rpmrepo/), served on
loopback: the real dnf resolves, rpmkeys checks signatures, createrepo_c writes the
metadata, and Debian's dnf then installs the role's packages from the mirror alone."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from tests.conftest import CliRun, require_tool
from tests.integration.rpmrepo import RpmRepos, dead_url, serve, write_config

pytestmark = pytest.mark.integration

ROLE_PACKAGES = {
    "master": {"mesos", "mesos-libs", "marathon", "chronos", "mesosphere-zookeeper"},
    "slave": {"mesos", "mesos-libs", "docker"},
}
OS_PACKAGES = {"cloud-init", "cloud-utils-growpart", "firewalld", "bash", "basesystem"}


@pytest.fixture
def config(tmp_path: Path, rpmrepo: RpmRepos) -> Path:
    for tool in ("dnf", "rpmkeys", "createrepo_c"):
        require_tool(tool)
    return write_config(tmp_path / "cfg", rpmrepo)


def lock_of(mirror: Path) -> dict[str, dict[str, object]]:
    document = json.loads((mirror / "mirror.lock.json").read_text())
    return {entry["name"]: entry for entry in document["rpms"]}


def installed_from(mirror: Path, root: Path, rpmrepo: RpmRepos, packages: list[str]) -> set[str]:
    """What Debian's dnf installs into an empty root from the mirror alone (NEVRAs)."""
    subprocess.run(
        [
            "dnf",
            "-y",
            "-q",
            "--installroot",
            str(root),
            "--releasever",
            "7",
            "--forcearch",
            "x86_64",
            "--setopt=reposdir=/dev/null",
            "--setopt=skip_if_unavailable=False",
            "--setopt=install_weak_deps=False",
            "--setopt=gpgcheck=True",
            f"--setopt=mirror.gpgkey=file://{rpmrepo.key}",
            f"--repofrompath=mirror,file://{mirror}",
            "--repo=mirror",
            "install",
            *packages,
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    query = subprocess.run(
        [
            "rpm",
            "--root",
            str(root),
            "-qa",
            "--qf",
            "%{NAME}-%{EPOCHNUM}:%{VERSION}-%{RELEASE}.%{ARCH}\n",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return {line for line in query.stdout.splitlines() if not line.startswith("gpg-pubkey")}


@pytest.mark.parametrize("roles", [["master"], ["slave"], ["master,slave"], ["master", "slave"]])
def test_a_mirror_holds_exactly_what_the_roles_install(
    builder_cli: CliRun, config: Path, tmp_path: Path, rpmrepo: RpmRepos, roles: list[str]
) -> None:
    if os.geteuid() != 0:
        pytest.skip("dnf --installroot runs RPM scriptlets chrooted: root only")
    mirror = tmp_path / "mirror"
    result = builder_cli("--config", str(config), "mirror", *roles, "--to", str(mirror))
    assert result.returncode == 0, result.stderr
    names = {name for text in roles for name in text.split(",")}
    wanted = OS_PACKAGES.union(*(ROLE_PACKAGES[name] for name in names))
    locked = lock_of(mirror)
    assert wanted <= set(locked)
    for entry in locked.values():
        rpm = mirror / "Packages" / Path(str(entry["location"])).name
        assert rpm.stat().st_size == entry["size"]
    assert ("docker" in locked) == ("slave" in names)
    assert ("marathon" in locked) == ("master" in names)
    specs = ["@core", "cloud-init", "cloud-utils-growpart", "firewalld", *sorted(wanted)]
    installed = installed_from(mirror, tmp_path / "root", rpmrepo, specs)
    assert installed == {str(entry["nevra"]) for entry in locked.values()}


def test_a_second_run_fetches_nothing_and_check_passes(
    builder_cli: CliRun, config: Path, tmp_path: Path
) -> None:
    mirror = tmp_path / "mirror"
    first = builder_cli("--config", str(config), "mirror", "slave", "--to", str(mirror))
    assert first.returncode == 0, first.stderr
    before = (mirror / "mirror.lock.json").read_bytes()
    again = builder_cli("--config", str(config), "mirror", "slave", "--to", str(mirror))
    assert again.returncode == 0, again.stderr
    count = len(lock_of(mirror))
    assert f"{count} RPMs, 0 fetched (0.0 MiB), {count} already there" in again.stdout
    assert (mirror / "mirror.lock.json").read_bytes() == before
    check = builder_cli("--config", str(config), "mirror", "slave", "--to", str(mirror), "--check")
    assert check.returncode == 0, check.stderr


def test_check_names_a_changed_a_missing_and_an_extra_rpm(
    builder_cli: CliRun, config: Path, tmp_path: Path
) -> None:
    mirror = tmp_path / "mirror"
    assert (
        builder_cli("--config", str(config), "mirror", "slave", "--to", str(mirror)).returncode == 0
    )
    packages = mirror / "Packages"
    docker = next(packages.glob("docker-*.rpm"))
    data = bytearray(docker.read_bytes())
    data[-1] ^= 0xFF
    docker.write_bytes(bytes(data))
    next(packages.glob("mesos-libs-*.rpm")).unlink()
    shutil.copy(docker, packages / "stowaway-1.0-1.x86_64.rpm")
    result = builder_cli("--config", str(config), "mirror", "slave", "--to", str(mirror), "--check")
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert any(line.startswith(f"changed: Packages/{docker.name}") for line in lines)
    assert any(line.startswith("missing: Packages/mesos-libs-") for line in lines)
    assert "extra: Packages/stowaway-1.0-1.x86_64.rpm (not in the lock)" in lines
    assert result.stderr.strip() == f"error: {mirror}: 3 RPM(s) differ from the lock"


def test_update_reports_the_newer_version(
    builder_cli: CliRun, rpmrepo: RpmRepos, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "cfg", rpmrepo)
    mirror = tmp_path / "mirror"
    assert (
        builder_cli("--config", str(config), "mirror", "slave", "--to", str(mirror)).returncode == 0
    )
    newer = write_config(
        tmp_path / "newer", rpmrepo, urls={"mesosphere": rpmrepo.url("newer", "mesos")}
    )
    kept = builder_cli("--config", str(newer), "mirror", "slave", "--to", str(mirror))
    assert kept.returncode == 0, kept.stderr
    assert lock_of(mirror)["mesos"]["version"] == "1.10.0"  # without --update the lock holds
    updated = builder_cli(
        "--config", str(newer), "mirror", "slave", "--to", str(mirror), "--update"
    )
    assert updated.returncode == 0, updated.stderr
    assert "~ mesos-0:1.10.0-2.0.1.el7.x86_64 -> mesos-0:1.11.0-1.0.1.el7.x86_64" in updated.stdout
    assert lock_of(mirror)["mesos"]["version"] == "1.11.0"
    assert not list((mirror / "Packages").glob("mesos-1.10.0-*"))


@pytest.mark.parametrize(
    ("variant", "message"),
    [
        ("tampered", "error: mesos-1.10.0-2.0.1.el7.x86_64.rpm: its signature does not verify"),
        ("unsigned", "not signed, and the mesosphere repository has gpgcheck on: refused"),
    ],
)
def test_an_rpm_that_fails_its_signature_is_refused_by_name(
    builder_cli: CliRun, rpmrepo: RpmRepos, tmp_path: Path, variant: str, message: str
) -> None:
    config = write_config(
        tmp_path / "cfg", rpmrepo, urls={"mesosphere": rpmrepo.url(variant, "mesos")}
    )
    mirror = tmp_path / "mirror"
    result = builder_cli("--config", str(config), "mirror", "slave", "--to", str(mirror))
    assert result.returncode == 1
    assert message in result.stderr
    assert not (mirror / "mirror.lock.json").exists()
    assert not list((mirror / "Packages").glob("mesos-1.*"))


def test_a_dead_repository_and_a_missing_package_are_one_line_and_nothing_written(
    builder_cli: CliRun, rpmrepo: RpmRepos, tmp_path: Path
) -> None:
    dead = dead_url()
    config = write_config(tmp_path / "dead", rpmrepo, urls={"mesosphere": dead})
    result = builder_cli("--config", str(config), "mirror", "slave", "--to", "out")
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: repository mesosphere ({dead}) does not answer: ")
    assert len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "out").exists()

    config = write_config(tmp_path / "missing", rpmrepo)
    slave = config / "roles" / "slave.yaml"
    slave.write_text(
        slave.read_text().replace("packages: [mesos, docker]", "packages: [mesos, cassandra]")
    )
    result = builder_cli("--config", str(config), "mirror", "slave", "--to", "out")
    assert result.returncode == 2
    assert result.stderr == (
        "error: cassandra: no configured repository has it (searched: base, extras, mesosphere)\n"
    )
    assert not (tmp_path / "out").exists()


def test_an_interrupted_fetch_resumes_with_a_range_request(
    builder_cli: CliRun, rpmrepo: RpmRepos, tmp_path: Path
) -> None:
    requests: list[tuple[str, str]] = []
    with serve(rpmrepo.root, requests) as base_url:
        config = write_config(
            tmp_path / "cfg", rpmrepo, urls={"mesosphere": f"{base_url}signed/mesos/"}
        )
        mirror = tmp_path / "mirror"
        rpm = rpmrepo.rpm("signed", "mesos")
        half = rpm.stat().st_size // 2
        (mirror / ".partial").mkdir(parents=True)
        (mirror / ".partial" / f"{rpm.name}.part").write_bytes(rpm.read_bytes()[:half])
        result = builder_cli("--config", str(config), "mirror", "slave", "--to", str(mirror))
    assert result.returncode == 0, result.stderr
    assert (f"/signed/mesos/{rpm.name}", f"bytes={half}-") in requests
    assert (mirror / "Packages" / rpm.name).read_bytes() == rpm.read_bytes()
    assert not (mirror / ".partial").exists()


def test_repository_credentials_reach_no_lock_log_or_message(
    builder_cli: CliRun, rpmrepo: RpmRepos, tmp_path: Path
) -> None:
    """A mirror behind basic authentication: user:password@ in the baseurl is used (dnf,
    the downloads) and shown nowhere: not in the lock, the output or an error."""
    secret = "s3cr3t-Pa55"
    with serve(rpmrepo.root, auth=f"builder:{secret}") as base_url:
        private = base_url.replace("http://", f"http://builder:{secret}@")
        config = write_config(
            tmp_path / "cfg", rpmrepo, urls={"mesosphere": f"{private}signed/mesos/"}
        )
        mirror = tmp_path / "mirror"
        made = builder_cli("--config", str(config), "mirror", "slave", "--to", str(mirror))
        assert made.returncode == 0, made.stderr
        lock = (mirror / "mirror.lock.json").read_text()
        assert '"mesosphere": "http://<redacted>@127.0.0.1:' in lock
        wrong = write_config(
            tmp_path / "wrong",
            rpmrepo,
            urls={
                "mesosphere": base_url.replace("http://", "http://builder:wrong-Pa55@")
                + "signed/mesos/"
            },
        )
        refused = builder_cli("--config", str(wrong), "mirror", "slave", "--to", "other")
    assert refused.returncode == 2
    assert refused.stderr.startswith("error: repository mesosphere (http://<redacted>@127.0.0.1:")
    for text in (lock, made.stdout, made.stderr, refused.stdout, refused.stderr):
        assert secret not in text
        assert "wrong-Pa55" not in text


def test_a_repository_that_never_answers_is_named_within_seconds(
    builder_cli: CliRun, rpmrepo: RpmRepos, tmp_path: Path
) -> None:
    """A server that takes the connection and says nothing (a hung mirror): the probe's
    5 s, not dnf's retries, decide; one line, exit 2, nothing written."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/mesos/"
        config = write_config(tmp_path / "cfg", rpmrepo, urls={"mesosphere": url})
        result = builder_cli("--config", str(config), "mirror", "slave", "--to", "out")
    assert result.returncode == 2
    assert result.stderr == (
        f"error: repository mesosphere ({url}) does not answer: no answer within 5 s\n"
    )
    assert not (tmp_path / "out").exists()
