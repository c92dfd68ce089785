"""The golden files pass the tools that will read them: bash and shellcheck for each
provision.sh, cloud-init for each seed's user-data and network-config.

Each check is also shown failing on a broken copy, so a pass means something.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from builder.firstboot.validate import validate_user_data
from tests.conftest import REPO, require_tool

pytestmark = pytest.mark.integration
GOLDEN = REPO / "tests" / "golden"
PROVISION_SCRIPTS = sorted(GOLDEN.rglob("provision.sh"))
USER_DATA = sorted((GOLDEN / "seeds").rglob("user-data"))
NETWORK_CONFIGS = sorted((GOLDEN / "seeds").rglob("network-config"))

# Every check shellcheck has, its optional ones too, at every severity; these aside:
SHELLCHECK_EXCLUDES = (
    # require-variable-braces: "$dir" is exactly as safe as "${dir}"; braces are taste.
    "SC2250",
    # require-double-brackets: the script's tests are plain file tests, and [ ] is
    # correct bash; [[ ]] would buy nothing here.
    "SC2292",
    # check-set-e-suppressed: unit_installed is a predicate, called in `if` on purpose;
    # its non-zero status is the answer, not an error set -e should catch.
    "SC2310",
)

# cloud-init 22.4 (Debian 12) has a schema for cloud-config only: `cloud-init schema`
# refuses a network-config ('needs to begin with "#cloud-config"'). So network-config
# goes through the parser cloud-init itself applies at boot, in its own Python, strictly
# (skip_broken=False raises where boot would skip a broken entry); a config that yields
# no interface (an unknown version) fails too.
NETWORK_CONFIG_CHECK = """
import sys
from cloudinit import safeyaml
from cloudinit.net.network_state import parse_net_config_data

with open(sys.argv[1], encoding="utf-8") as stream:
    config = safeyaml.load(stream.read())
state = parse_net_config_data(config, skip_broken=False)
if not list(state.iter_interfaces()):
    sys.exit("network-config: cloud-init configures no interface from it")
"""


def _ids(path: Path) -> str:
    return str(path.relative_to(GOLDEN))


def bash_syntax(script: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-n", str(script)], capture_output=True, text=True, check=False, timeout=60
    )


def shellcheck(script: Path) -> subprocess.CompletedProcess[str]:
    command = [
        require_tool("shellcheck"),
        "--norc",
        "--severity=style",
        "--enable=all",
        f"--exclude={','.join(SHELLCHECK_EXCLUDES)}",
        "--format=gcc",
        str(script),
    ]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)


def network_config_check(path: Path) -> subprocess.CompletedProcess[str]:
    """cloud-init's own parser, run by the Python the cloud-init command runs on."""
    cloud_init = Path(require_tool("cloud-init"))
    interpreter = cloud_init.read_text(errors="replace").splitlines()[0].removeprefix("#!")
    return subprocess.run(
        [*interpreter.split(), "-c", NETWORK_CONFIG_CHECK, str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def _broken_copy(source: Path, tmp_path: Path, old: str, new: str) -> Path:
    text = source.read_text()
    assert old in text, f"{source} no longer holds {old!r}: pick another breakage"
    broken = tmp_path / source.name
    broken.write_text(text.replace(old, new, 1))
    return broken


def test_there_are_golden_files_to_check() -> None:
    assert len(PROVISION_SCRIPTS) == 6
    assert len(USER_DATA) == 7
    assert len(NETWORK_CONFIGS) == 1


@pytest.mark.parametrize("script", PROVISION_SCRIPTS, ids=_ids)
def test_golden_provision_script_passes_bash_and_shellcheck(script: Path) -> None:
    syntax = bash_syntax(script)
    assert syntax.returncode == 0, syntax.stderr
    lint = shellcheck(script)
    assert (lint.returncode, lint.stdout) == (0, ""), lint.stdout + lint.stderr


def test_bash_and_shellcheck_fail_on_a_broken_script(tmp_path: Path) -> None:
    script = PROVISION_SCRIPTS[0]
    unclosed = tmp_path / "unclosed.sh"
    unclosed.write_text(script.read_text() + "if true; then\n")
    syntax = bash_syntax(unclosed)
    assert syntax.returncode == 2
    assert "syntax error: unexpected end of file" in syntax.stderr
    # Valid bash that shellcheck refuses: an unquoted expansion under rm -rf.
    careless = tmp_path / "careless.sh"
    careless.write_text(script.read_text() + "dir=$(pwd)\nrm -rf $dir/*\n")
    assert bash_syntax(careless).returncode == 0
    lint = shellcheck(careless)
    assert lint.returncode == 1
    assert {line.rsplit(" ", 1)[-1] for line in lint.stdout.splitlines()} == {
        "[SC2086]",
        "[SC2115]",
    }


@pytest.mark.parametrize("path", USER_DATA, ids=_ids)
def test_golden_user_data_passes_cloud_init_schema(path: Path) -> None:
    require_tool("cloud-init")
    assert validate_user_data(path) == []


def test_cloud_init_schema_fails_on_broken_user_data(tmp_path: Path) -> None:
    require_tool("cloud-init")
    broken = _broken_copy(
        USER_DATA[0], tmp_path, "preserve_hostname: false", "preserve_hostname: 3"
    )
    problems = validate_user_data(broken, "user-data")
    # A set: cloud-init 22.4 reports this one twice (two of its modules declare the key).
    assert {(p.line, p.key, p.message) for p in problems} == {
        (4, "preserve_hostname", "cloud-init schema: 3 is not of type 'boolean'")
    }


@pytest.mark.parametrize("path", NETWORK_CONFIGS, ids=_ids)
def test_golden_network_config_passes_cloud_init_parser(path: Path) -> None:
    result = network_config_check(path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("old", "new", "error"),
    [
        ("name: eth0", "nome: eth0", "Command missing {'name'} of required keys ['name']"),
        (
            '"192.168.50.22/24"',
            '"192.168.50.322/24"',
            "Address 192.168.50.322/24 is not a valid ip address",
        ),
        ("version: 1", "version: 3", "cloud-init configures no interface from it"),
    ],
    ids=["missing-name", "bad-address", "unknown-version"],
)
def test_cloud_init_parser_fails_on_broken_network_config(
    tmp_path: Path, old: str, new: str, error: str
) -> None:
    broken = _broken_copy(NETWORK_CONFIGS[0], tmp_path, old, new)
    result = network_config_check(broken)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].endswith(error)
