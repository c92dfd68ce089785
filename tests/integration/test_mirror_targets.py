"""A mirror (builder mirror) carried by the installer ISO and checked before a build.

The ISO: the mirror's Packages/ and repodata/ go on the media as /builder-repo/,
the kickstart reads `cdrom` plus that repository only, and Debian's dnf installs
the role's packages from the repository read back off the ISO with every other
repository out of reach. The preflight: a mirror that does not cover the role,
or misses a file, is one line before anything is written.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import CliRun, require_tool
from tests.installer_media import checksum_option, tiny_installer_iso
from tests.integration.rpmrepo import RpmRepos, dead_url, make_mirror, write_config

pytestmark = pytest.mark.integration
REPOS = ("base", "extras", "mesosphere")


@pytest.fixture(scope="module")
def mirrored(rpmrepo: RpmRepos, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A slave mirror, and a config whose every repository is dead."""
    for tool in ("dnf", "xorriso", "createrepo_c", "mcopy", "implantisomd5"):
        require_tool(tool)
    root = tmp_path_factory.mktemp("mirrored")
    live = write_config(root / "live", rpmrepo)
    mirror = root / "mirror"
    make_mirror(live, "slave", mirror)
    dead = write_config(root / "dead", rpmrepo, urls=dict.fromkeys(REPOS, dead_url()))
    return {"mirror": mirror, "config": dead, "root": root}


def test_the_installer_iso_carries_the_mirror(
    mirrored: dict[str, Path], rpmrepo: RpmRepos, builder_cli: CliRun, tmp_path: Path
) -> None:
    source = tiny_installer_iso(tmp_path / "src")
    out = tmp_path / "out"
    result = builder_cli(
        "--config",
        str(mirrored["config"]),
        "build",
        "slave",
        "--target",
        "iso",
        "--iso",
        str(source),
        "--iso-checksum",
        checksum_option(source),
        "--mirror",
        str(mirrored["mirror"]),
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    iso = out / "slave" / "slave-installer.iso"
    extracted = tmp_path / "extracted"
    subprocess.run(
        [
            "xorriso",
            "-osirrox",
            "on",
            "-indev",
            str(iso),
            "-extract",
            "/builder-repo",
            str(extracted / "builder-repo"),
            "-extract",
            "/ks.cfg",
            str(extracted / "ks.cfg"),
        ],
        check=True,
        capture_output=True,
    )
    kickstart = (extracted / "ks.cfg").read_text().splitlines()
    assert "cdrom" in kickstart
    assert [line for line in kickstart if line.startswith("repo ")] == [
        "repo --name=builder-offline --baseurl=file:///run/install/repo/builder-repo"
    ]
    lock = json.loads((mirrored["mirror"] / "mirror.lock.json").read_text())
    carried = sorted(p.name for p in (extracted / "builder-repo" / "Packages").glob("*.rpm"))
    assert carried == sorted(Path(rpm["location"]).name for rpm in lock["rpms"])
    # Debian's dnf, the repository read back off the ISO and nothing else.
    installroot = tmp_path / "root"
    done = subprocess.run(
        [
            "dnf",
            "-y",
            "-q",
            "--installroot",
            str(installroot),
            "--releasever",
            "7",
            "--forcearch",
            "x86_64",
            "--setopt=reposdir=/dev/null",
            "--setopt=install_weak_deps=False",
            "--setopt=skip_if_unavailable=False",
            f"--setopt=iso.gpgkey=file://{rpmrepo.key}",
            "--setopt=gpgcheck=True",
            f"--repofrompath=iso,file://{extracted / 'builder-repo'}",
            "--repo=iso",
            "--downloadonly",
            "--destdir",
            str(tmp_path / "fetched"),
            "install",
            "@core",
            "cloud-init",
            "cloud-utils-growpart",
            "firewalld",
            "mesos",
            "docker",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    fetched = sorted(p.name for p in (tmp_path / "fetched").glob("*.rpm"))
    assert fetched == carried


def test_a_mirror_that_does_not_cover_the_role_is_refused_before_anything_is_written(
    mirrored: dict[str, Path], builder_cli: CliRun, tmp_path: Path
) -> None:
    source = tiny_installer_iso(tmp_path / "src")
    out = tmp_path / "out"
    args = ["--iso", str(source), "--iso-checksum", checksum_option(source), "--out", str(out)]
    config = str(mirrored["config"])
    master = builder_cli(
        "--config",
        config,
        "build",
        "master",
        "--target",
        "iso",
        "--mirror",
        str(mirrored["mirror"]),
        *args,
    )
    assert master.returncode == 2
    error, hint = master.stderr.splitlines()
    assert error.startswith(f"error: {mirrored['mirror']}: its lock was made for slave; it lacks ")
    assert "marathon" in error
    assert hint == f"hint: builder mirror slave master --to {mirrored['mirror']} --update"
    assert not out.exists()

    broken = tmp_path / "broken"
    shutil.copytree(mirrored["mirror"], broken)
    docker = next((broken / "Packages").glob("docker-*.rpm"))
    docker.unlink()
    slave = builder_cli("--config", config, "build", "slave", "--mirror", str(broken), "--dry-run")
    assert slave.returncode == 2
    assert f"error: {broken}: Packages/{docker.name} is missing or incomplete" in slave.stderr


def test_validate_repos_checks_the_repositories_or_the_mirror(
    mirrored: dict[str, Path], rpmrepo: RpmRepos, builder_cli: CliRun, tmp_path: Path
) -> None:
    live = write_config(tmp_path / "live", rpmrepo)
    good = builder_cli("--config", str(live), "validate", "slave", "--repos")
    assert good.returncode == 0, good.stderr
    assert good.stdout.splitlines()[0] == "slave: valid"
    assert good.stdout.splitlines()[1].startswith("slave: packages: ")
    assert good.stdout.splitlines()[1].endswith(" packages from base, extras, mesosphere")

    dead = builder_cli("--config", str(mirrored["config"]), "validate", "slave", "--repos")
    assert dead.returncode == 2
    assert dead.stderr.startswith("error: repository base (http://127.0.0.1:")

    mirror = mirrored["mirror"]
    offline = builder_cli(
        "--config", str(mirrored["config"]), "validate", "slave", "--repos", "--mirror", str(mirror)
    )
    assert offline.returncode == 0, offline.stderr
    assert offline.stdout.splitlines()[1].startswith(f"slave: packages: mirror {mirror}: ")


def test_the_ami_template_copies_the_mirror_in_and_packer_validates_it(
    mirrored: dict[str, Path], tmp_path: Path
) -> None:
    """An AMI build with a mirror: the mirror is uploaded before the role's script, which
    installs from it alone (BUILDER_MIRROR); the template is valid to the real Packer."""
    require_tool("packer")
    from builder.config.load import load_config
    from builder.config.roles import compose
    from builder.image.validate import validate_packer
    from builder.render.packer_template import LATEST_KNOWN_PACKER
    from builder.render.role import PACKER_TEMPLATE, PROVISION, render_role

    loaded = load_config(mirrored["config"])
    rendered = render_role(
        loaded, compose(loaded, ("slave",)), packer_version=(1, 6, 6), mirror=True
    )
    rendered.write(tmp_path / "render")
    template = rendered.files[PACKER_TEMPLATE]
    upload = template.index('provisioner "file"')
    role_script = template.index("install configure seal")
    assert upload < role_script
    assert 'environment_vars = ["BUILDER_MIRROR=/var/tmp/builder-mirror"]' in template
    assert validate_packer(tmp_path / "render", mirror_directory=str(mirrored["mirror"])) == []
    without = render_role(loaded, compose(loaded, ("slave",)), packer_version=LATEST_KNOWN_PACKER)
    assert "BUILDER_MIRROR" not in without.files[PACKER_TEMPLATE]
    script = rendered.files[PROVISION]
    assert "--disablerepo='*' --enablerepo=builder-mirror install" in script
    assert 'rm -rf "$BUILDER_MIRROR"' in script
