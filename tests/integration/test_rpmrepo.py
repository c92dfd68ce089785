"""The stand-in RPM repositories, checked with the real tools that will consume them.

rpmkeys verifies the signatures (signed passes, unsigned has none, tampered
fails); Debian's dnf, reading only our repositories over HTTP on loopback with
gpgcheck on, resolves and installs the master's and the slave's package sets
into an installroot, where the packages' %post scripts enable their units (the
mesos RPM both mesos-master and mesos-slave); unsigned, tampered, missing and
unreachable inputs fail it; the newer variant offers the higher mesos.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import IN_CI, require_tool
from tests.integration.rpmrepo import (
    REPOS,
    VARIANTS,
    RpmRepos,
    build_rpmrepo,
    dead_url,
    fixture_digest,
    packages,
)

pytestmark = pytest.mark.integration

BASE = ["@core", "cloud-init", "cloud-utils-growpart", "firewalld"]  # os.yaml's base_packages
MASTER = ["java-1.8.0-openjdk-headless", "mesosphere-zookeeper", "mesos", "marathon", "chronos"]
SLAVE = ["mesos", "docker"]
UNITS = Path("usr/lib/systemd/system")
WANTS = Path("etc/systemd/system/multi-user.target.wants")
# dnf talks to 127.0.0.1 only: no proxy from the environment may intercept it.
ENV = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}


def _rpm_query(rpm: Path, fmt: str) -> str:
    return subprocess.run(
        [require_tool("rpm"), "-qp", "--nosignature", "--qf", fmt, str(rpm)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def _checksig(rpm: Path, dbpath: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_tool("rpmkeys"), "--dbpath", str(dbpath), *extra, "--checksig", str(rpm)],
        capture_output=True,
        text=True,
        check=False,
    )


def _dnf(
    root: Path, repos: dict[str, str], key_url: str, *args: str
) -> subprocess.CompletedProcess[str]:
    """Debian's dnf over `repos` (id -> URL) only, gpgcheck on with `key_url`, into root."""
    if os.geteuid() != 0:  # rpm chroots into the installroot for the %post scripts
        if IN_CI:
            pytest.fail("the installroot tests need root (CI runs as root)")
        pytest.skip("the installroot tests need root")
    argv = [require_tool("dnf"), "-y", "--installroot", str(root), "--releasever", "7"]
    argv += ["--forcearch", "x86_64", "--setopt=reposdir=/dev/null"]
    argv += [f"--setopt=cachedir={root.parent / (root.name + '-dnf-cache')}"]
    argv += ["--setopt=install_weak_deps=False", "--setopt=retries=1", "--disableplugin=*"]
    argv += ["--setopt=skip_if_unavailable=False"]  # Debian's dnf.conf says True
    for name, url in repos.items():
        argv += ["--repofrompath", f"{name},{url}", f"--setopt={name}.gpgcheck=1"]
        argv += [f"--setopt={name}.gpgkey={key_url}"]
    return subprocess.run(
        [*argv, *args], capture_output=True, text=True, timeout=300, check=False, env=ENV
    )


def _repos(rpmrepo: RpmRepos, variant: str, names: tuple[str, ...] = REPOS) -> dict[str, str]:
    return {name: rpmrepo.url(variant, name) for name in names}


def _installed(root: Path) -> dict[str, str]:
    out = subprocess.run(
        [require_tool("rpm"), "--root", str(root), "-qa", "--qf", "%{NAME} %{VERSION}\n"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(line.split(" ", 1) for line in out.splitlines())


# ---- the cache -----------------------------------------------------------------------------------
def test_the_build_is_cached_under_the_digest_and_reused(rpmrepo: RpmRepos) -> None:
    assert rpmrepo.root.name == fixture_digest()
    assert (rpmrepo.root / "COMPLETE").read_text().startswith(f"digest={fixture_digest()}\n")
    before = (rpmrepo.root / "COMPLETE").stat()
    assert build_rpmrepo() == rpmrepo.root
    after = (rpmrepo.root / "COMPLETE").stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)  # not rebuilt
    assert not list(rpmrepo.root.parent.glob(".build-*"))  # no scratch left behind


def test_every_table_entry_is_in_every_variant_under_its_name_and_arch(
    rpmrepo: RpmRepos,
) -> None:
    for variant in VARIANTS:
        found: dict[str, tuple[str, str]] = {}
        for repo in REPOS:
            assert (rpmrepo.path(variant, repo) / "repodata" / "repomd.xml").is_file()
            for rpm in rpmrepo.path(variant, repo).glob("*.rpm"):
                name, arch = _rpm_query(rpm, "%{NAME} %{ARCH}").split()
                found[name] = (arch, repo)
        expected = {p["name"]: (p["arch"], p["repo"]) for p in packages()}
        assert found == expected, variant
    primary = next((rpmrepo.path("signed", "os") / "repodata").glob("*-primary.xml.gz"))
    assert primary.exists()  # gzip metadata: CentOS 7's yum reads it
    assert list((rpmrepo.path("signed", "os") / "repodata").glob("*-comps.xml*"))


def test_payloads_come_from_the_node_stand_in_tree(rpmrepo: RpmRepos) -> None:
    mesos = rpmrepo.rpm("signed", "mesos")
    listing = subprocess.run(
        [require_tool("rpm"), "-qpl", "--nosignature", str(mesos)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for path in (
        "/usr/lib/systemd/system/mesos-master.service",
        "/usr/lib/systemd/system/mesos-slave.service",
        "/usr/bin/mesos-init-wrapper",
        "/etc/mesos/zk",
        "/etc/mesos-master/quorum",
        "/etc/default/mesos",
        "/etc/default/mesos-master",
        "/etc/default/mesos-slave",
    ):
        assert path in listing
    assert _rpm_query(mesos, "[%{REQUIRENAME}\n]").split("\n").count("mesos-libs") == 1
    assert "systemctl enable mesos-master mesos-slave" in _rpm_query(mesos, "%{POSTIN}")


# ---- signatures ----------------------------------------------------------------------------------
def test_signed_rpms_verify_with_the_test_key_only(rpmrepo: RpmRepos, tmp_path: Path) -> None:
    rpm = rpmrepo.rpm("signed", "mesos")
    without_key = _checksig(rpm, tmp_path / "empty-db")
    assert without_key.returncode != 0
    assert "SIGNATURES NOT OK" in without_key.stdout
    subprocess.run(
        [require_tool("rpmkeys"), "--dbpath", str(tmp_path / "db"), "--import", str(rpmrepo.key)],
        check=True,
    )
    for variant in ("signed", "newer"):
        for repo in REPOS:
            for rpm in rpmrepo.path(variant, repo).glob("*.rpm"):
                result = _checksig(rpm, tmp_path / "db")
                assert result.returncode == 0, result.stdout + result.stderr
                assert result.stdout.endswith(": digests signatures OK\n")


def test_unsigned_rpms_carry_no_signature(rpmrepo: RpmRepos, tmp_path: Path) -> None:
    subprocess.run(
        [require_tool("rpmkeys"), "--dbpath", str(tmp_path / "db"), "--import", str(rpmrepo.key)],
        check=True,
    )
    rpm = rpmrepo.rpm("unsigned", "mesos")
    assert _checksig(rpm, tmp_path / "db").stdout.endswith(": digests OK\n")  # intact, unsigned
    required = _checksig(rpm, tmp_path / "db", "--define", "_pkgverify_level signature")
    assert required.returncode != 0
    assert "SIGNATURES NOT OK" in required.stdout


def test_the_tampered_rpm_fails_verification(rpmrepo: RpmRepos, tmp_path: Path) -> None:
    subprocess.run(
        [require_tool("rpmkeys"), "--dbpath", str(tmp_path / "db"), "--import", str(rpmrepo.key)],
        check=True,
    )
    result = _checksig(rpmrepo.rpm("tampered", "mesos"), tmp_path / "db")
    assert result.returncode != 0
    assert "NOT OK" in result.stdout
    intact = _checksig(rpmrepo.rpm("tampered", "mesos-libs"), tmp_path / "db")
    assert intact.returncode == 0, intact.stdout  # only the one file was changed


# ---- dnf -----------------------------------------------------------------------------------------
def test_dnf_installs_the_master_set_and_mesos_enables_master_and_slave(
    rpmrepo: RpmRepos, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    result = _dnf(
        root,
        _repos(rpmrepo, "signed", ("os", "mesos")),
        rpmrepo.key_url,
        "install",
        *BASE,
        *MASTER,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    installed = _installed(root)
    # pulled in: mesos-libs by mesos, the JRE by marathon, @core from comps.xml
    for name in ("mesos-libs", "java-1.8.0-openjdk-headless", "basesystem", "bash", "systemd"):
        assert name in installed
    assert "docker" not in installed
    assert (root / "etc/mesos/zk").read_text() == "zk://localhost:2181/mesos\n"
    assert (root / "etc/chronos/conf/http_port").read_text() == "4400\n"
    assert (root / "etc/zookeeper/conf/zoo.cfg").is_file()
    for unit in ("zookeeper", "mesos-master", "mesos-slave", "marathon", "chronos"):
        assert (root / UNITS / f"{unit}.service").is_file()
        link = root / WANTS / f"{unit}.service"
        assert os.readlink(link) == f"/{UNITS}/{unit}.service"  # the %post enabled it


def test_dnf_installs_the_slave_set_from_three_repositories(
    rpmrepo: RpmRepos, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    result = _dnf(root, _repos(rpmrepo, "signed"), rpmrepo.key_url, "install", *BASE, *SLAVE)
    assert result.returncode == 0, result.stdout + result.stderr
    installed = _installed(root)
    assert {"mesos", "mesos-libs", "docker", "firewalld", "cloud-init"} <= installed.keys()
    assert "java-1.8.0-openjdk-headless" not in installed
    for unit in ("docker", "mesos-slave", "mesos-master"):  # the trap: the slave gets master too
        assert (root / WANTS / f"{unit}.service").is_symlink()


def test_dnf_refuses_unsigned_packages_with_gpgcheck(rpmrepo: RpmRepos, tmp_path: Path) -> None:
    root = tmp_path / "root"
    result = _dnf(root, _repos(rpmrepo, "unsigned"), rpmrepo.key_url, "install", "mesos")
    assert result.returncode != 0
    assert "is not signed" in result.stdout + result.stderr
    assert "mesos" not in _installed(root)


def test_dnf_refuses_the_tampered_package(rpmrepo: RpmRepos, tmp_path: Path) -> None:
    root = tmp_path / "root"
    result = _dnf(root, _repos(rpmrepo, "tampered"), rpmrepo.key_url, "install", *BASE, *SLAVE)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "Problem opening package mesos-1.10.0-2.0.1.el7.x86_64.rpm" in output
    assert "GPG check FAILED" in output
    assert "mesos" not in _installed(root)


def test_a_package_no_repository_has_fails_dnf(rpmrepo: RpmRepos, tmp_path: Path) -> None:
    root = tmp_path / "root"
    result = _dnf(root, _repos(rpmrepo, "signed"), rpmrepo.key_url, "install", "mesos", "cassandra")
    assert result.returncode != 0
    assert "No match for argument: cassandra" in result.stdout + result.stderr


def test_an_unreachable_repository_fails_dnf(rpmrepo: RpmRepos, tmp_path: Path) -> None:
    repos = {**_repos(rpmrepo, "signed"), "gone": dead_url()}
    result = _dnf(tmp_path / "root", repos, rpmrepo.key_url, "install", "mesos")
    assert result.returncode != 0
    assert "gone" in result.stdout + result.stderr


def test_the_newer_variant_offers_the_higher_mesos(rpmrepo: RpmRepos, tmp_path: Path) -> None:
    root = tmp_path / "root"
    repos = ("os", "mesos")
    installed = _dnf(root, _repos(rpmrepo, "signed", repos), rpmrepo.key_url, "install", "mesos")
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert _installed(root)["mesos"] == "1.10.0"
    check = _dnf(root, _repos(rpmrepo, "newer", repos), rpmrepo.key_url, "check-update")
    assert check.returncode == 100, check.stdout + check.stderr  # 100: updates available
    updates = {line.split()[0] for line in check.stdout.splitlines() if ".x86_64 " in line}
    assert updates == {"mesos.x86_64", "mesos-libs.x86_64"}
    upgraded = _dnf(root, _repos(rpmrepo, "newer", repos), rpmrepo.key_url, "upgrade")
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
    assert _installed(root)["mesos"] == "1.11.0"
