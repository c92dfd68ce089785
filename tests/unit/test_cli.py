"""The command line as a user meets it."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import REPO, CliRun


def test_render_default_config_with_no_config_option(builder_cli: CliRun, tmp_path: Path) -> None:
    for role, slug in (("master", "master"), ("slave", "slave"), ("master,slave", "master-slave")):
        result = builder_cli("render", role, "--packer-version", "1.6.6")
        assert result.returncode == 0, result.stderr
        out = tmp_path / "build" / slug
        assert sorted(p.name for p in out.iterdir()) == [
            "build.pkr.hcl",
            "build.pkrvars.json",
            "ks.cfg",
            "provision.sh",
        ]
        golden = REPO / "tests" / "golden" / "packer-1.6" / slug
        assert (out / "ks.cfg").read_text() == (golden / "ks.cfg").read_text()


def test_local_roles_config_is_preferred(builder_cli: CliRun, tmp_path: Path) -> None:
    assert builder_cli("init", "roles-config").returncode == 0
    cluster = tmp_path / "roles-config" / "cluster.yaml"
    cluster.write_text(cluster.read_text().replace("test167", "node2"))
    result = builder_cli("render", "slave", "--packer-version", "1.6.6")
    assert result.returncode == 0, result.stderr


def test_init_refuses_a_non_empty_directory(builder_cli: CliRun, tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("mine")
    result = builder_cli("init", "taken")
    assert result.returncode == 2
    assert result.stderr.splitlines()[0] == "error: taken: exists and is not empty"
    assert (tmp_path / "taken" / "file").read_text() == "mine"


def test_init_copy_loads_and_matches_the_default(builder_cli: CliRun, tmp_path: Path) -> None:
    assert builder_cli("init", "mine").returncode == 0
    written = sorted(
        str(p.relative_to(tmp_path / "mine")) for p in (tmp_path / "mine").rglob("*.yaml")
    )
    assert written == ["cluster.yaml", "os.yaml", "roles/master.yaml", "roles/slave.yaml"]
    assert (
        builder_cli("--config", "mine", "render", "master", "--packer-version", "1.6.6").returncode
        == 0
    )


def test_schema_is_json_schema_of_the_model(builder_cli: CliRun) -> None:
    result = builder_cli("schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    assert set(schema["properties"]) == {"os", "roles", "cluster"}
    assert schema["additionalProperties"] is False
    node = schema["$defs"]["Node"]
    assert node["required"] == ["hostname", "ip", "roles"]


def test_help_lists_the_commands(builder_cli: CliRun) -> None:
    result = builder_cli("--help")
    assert result.returncode == 0
    for command in ("render", "validate", "init", "schema", "doctor"):
        assert f"  {command} " in result.stdout


def test_internal_errors_hide_the_traceback_unless_debug(
    builder_cli: CliRun, tmp_path: Path
) -> None:
    result = builder_cli("render", "master", "--packer-version", "not-a-version")
    assert result.returncode == 2
    assert result.stderr.startswith("error: cannot read a Packer version")
