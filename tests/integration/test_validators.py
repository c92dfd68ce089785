"""The ecosystem's own validators on everything we render, and on bad input."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from builder.config.load import LoadedConfig
from builder.config.roles import compose
from builder.firstboot.validate import validate_user_data
from builder.image.validate import validate_kickstart, validate_packer, validate_role
from builder.render.packer_template import LATEST_KNOWN_PACKER
from builder.render.role import render_role
from tests.conftest import REPO, SAMPLE_SECRETS, CliRun, generated_cluster_yaml, require_tool

pytestmark = pytest.mark.integration
GOLDEN = REPO / "tests" / "golden"
ROLE_SETS = [("master",), ("slave",), ("master", "slave")]


@pytest.fixture(autouse=True)
def _tools() -> None:
    require_tool("packer")
    require_tool("cloud-init")
    require_tool("ssh-keygen")


@pytest.mark.parametrize("names", ROLE_SETS, ids=["-".join(n) for n in ROLE_SETS])
def test_every_role_set_validates(loaded: LoadedConfig, names: tuple[str, ...]) -> None:
    assert validate_role(loaded, compose(loaded, names), (1, 6, 6)) == []


@pytest.mark.parametrize(
    "path", sorted(GOLDEN.rglob("*ks.cfg")), ids=lambda p: str(p.relative_to(GOLDEN))
)
def test_golden_kickstarts_pass_ksvalidator(path: Path, tmp_path: Path) -> None:
    """The real ksvalidator CLI agrees with our in-process check. (ksvalidator leaves its
    preprocessed copy, TMPDIR/tmp*-ks.cfg, behind: in the test's own directory.)"""
    ksvalidator = Path(require_tool("ksvalidator"))
    result = subprocess.run(
        [str(ksvalidator), "-v", "RHEL7", str(path)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert validate_kickstart(path.read_text(), str(path)) == []


def test_kickstart_errors_and_deprecations_fail_with_lines(loaded: LoadedConfig) -> None:
    text = render_role(loaded, compose(loaded, ("slave",)), packer_version=(1, 6, 6)).files[
        "ks.cfg"
    ]
    lines = text.splitlines()
    bad = "\n".join([*lines[:5], "firewall --enabled --high", "upgrade", *lines[5:]]) + "\n"
    # The error stops pykickstart at line 6: the deprecated command after it is never read.
    problems = validate_kickstart(bad, "ks.cfg")
    assert [(p.line, p.message) for p in problems] == [
        (6, "kickstart (RHEL7): unrecognized arguments: --high"),
    ]
    only_deprecated = "\n".join([*lines[:5], "upgrade", *lines[5:]]) + "\n"
    [problem] = validate_kickstart(only_deprecated, "ks.cfg")
    assert problem.line == 6
    assert "deprecated" in problem.message


def test_packer_validate_reports_the_line(loaded: LoadedConfig, tmp_path: Path) -> None:
    rendered = render_role(loaded, compose(loaded, ("slave",)), packer_version=(1, 6, 6))
    out = tmp_path / "slave"
    rendered.write(out)
    template = out / "build.pkr.hcl"
    text = template.read_text().replace(
        '  disk_interface       = "virtio"', '  disk_interfase = "virtio"'
    )
    template.write_text(text)
    [problem] = validate_packer(out, "build.pkr.hcl")
    line = next(i + 1 for i, entry in enumerate(text.splitlines()) if "disk_interfase" in entry)
    assert problem.line == line
    assert 'An argument named "disk_interfase" is not expected here' in problem.message


def test_packer_validates_the_verify_form(loaded: LoadedConfig, tmp_path: Path) -> None:
    """build --verify's template (shell-local steps around seal) as Packer 1.6 reads it."""
    rendered = render_role(
        loaded, compose(loaded, ("slave",)), packer_version=(1, 6, 6), verify=True
    )
    out = tmp_path / "slave"
    rendered.write(out)
    assert "verify_command" in (out / "build.pkr.hcl").read_text()
    command = "builder verify slave --layer image"
    assert validate_packer(out, verify_command=command) == []
    [problem] = validate_packer(out)  # a --verify build must say what to run
    assert "verify_command" in problem.message


def test_packer_1_6_rejects_the_current_form(loaded: LoadedConfig, tmp_path: Path) -> None:
    """Why the template follows the installed version: 1.6.6 refuses required_plugins."""
    rendered = render_role(loaded, compose(loaded, ("slave",)), packer_version=LATEST_KNOWN_PACKER)
    rendered.write(tmp_path / "slave")
    problems = validate_packer(tmp_path / "slave")
    assert any("required_plugins" in p.message for p in problems)


def test_cloud_init_schema(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(
        "#cloud-config\nhostname: test166\nruncmd:\n  - [systemctl, start, zookeeper]\n"
    )
    assert validate_user_data(good) == []
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "#cloud-config\nhostname: test166\nwrite_files:\n  - path: /etc/x\n    content: x\n"
        "    permissions: 644\nruncmd: reboot\n"
    )
    problems = validate_user_data(bad, "bad.yaml")
    assert sorted((p.line, p.key) for p in problems) == [
        (6, "write_files[0].permissions"),
        (7, "runcmd"),
    ]
    broken = tmp_path / "broken.yaml"
    broken.write_text("#cloud-config\nhostname: [test166\n")
    [problem] = validate_user_data(broken)
    assert problem.line == 2


def test_validate_command_on_the_default(builder_cli: CliRun) -> None:
    result = builder_cli("validate")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "master: valid",
        "slave: valid",
        "master,slave: valid",
        "seed test166: valid",
        "seed test167: valid",
    ]
    # The default config has no secrets yet: its secured seeds are checked all the same.
    assert "none yet; the seeds are checked with throwaway secrets" in result.stderr


def test_validate_checks_seeds_with_the_clusters_secrets(
    builder_cli: CliRun, secured_copy: Path
) -> None:
    result = builder_cli("--config", str(secured_copy), "validate")
    assert result.returncode == 0, result.stderr
    assert "seed test167: valid" in result.stdout.splitlines()
    assert "throwaway" not in result.stderr
    # test166's seed carries a keystore: from a throwaway CA, nothing kept in the config
    assert not (secured_copy / "node-certificates").exists()


def test_validate_command_fails_with_exit_1(builder_cli: CliRun, config_copy: Path) -> None:
    os_yaml = config_copy / "os.yaml"
    # A value the model allows but Packer refuses: a boot_wait Packer cannot parse.
    os_yaml.write_text(os_yaml.read_text().replace("boot_wait: 10s", "boot_wait: 99999999999h"))
    result = builder_cli("--config", str(config_copy), "validate", "slave")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "invalid: slave/build.pkr.hcl" in result.stderr


def test_large_cluster_user_data_passes_cloud_init_schema(
    config_copy: Path, tmp_path: Path
) -> None:
    """3,500 nodes, 3,499 of them masters: a node's /etc/hosts (the masters and itself) and
    zoo.cfg pass 64 KiB and travel gz+b64 encoded; cloud-init's schema accepts it. (With
    three masters a node's seed stays small however many agents there are.)"""
    from builder.config.load import load_config
    from builder.firstboot.seed import node_seed

    (config_copy / "cluster.yaml").write_text(generated_cluster_yaml(3500, masters=3499))
    big = load_config(config_copy)
    user_data = node_seed(big, big.config.cluster.nodes[9], secrets=SAMPLE_SECRETS).user_data
    assert "encoding: gz+b64" in user_data
    path = tmp_path / "user-data"
    path.write_text(user_data)
    assert validate_user_data(path) == []
