"""The command line as a user meets it."""

from __future__ import annotations

import json
from pathlib import Path

from builder.config.load import embedded_config_dir
from tests.conftest import REPO, CliRun

RENDERED = ["build.pkr.hcl", "build.pkrvars.json", "ks.cfg", "provision.sh"]


def _tree(root: Path) -> dict[str, str]:
    """Every file under root (relative path -> content), caches and package markers aside."""
    return {
        str(path.relative_to(root)): path.read_text()
        for path in sorted(root.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts and path.name != "__init__.py"
    }


def test_render_default_config_with_no_config_option(builder_cli: CliRun, tmp_path: Path) -> None:
    for role, slug in (("master", "master"), ("slave", "slave"), ("master,slave", "master-slave")):
        result = builder_cli("render", role, "--packer-version", "1.6.6")
        assert result.returncode == 0, result.stderr
        golden = REPO / "tests" / "golden" / "packer-1.6" / slug
        assert _tree(tmp_path / "build" / slug) == _tree(golden)
        assert sorted(_tree(golden)) == RENDERED


def test_local_roles_config_is_preferred(builder_cli: CliRun, tmp_path: Path) -> None:
    """./roles-config wins over the embedded default: its cluster.yaml names the nodes."""
    assert builder_cli("init", "roles-config").returncode == 0
    assert builder_cli("secrets", "init").returncode == 0  # beside ./roles-config
    cluster = tmp_path / "roles-config" / "cluster.yaml"
    cluster.write_text(cluster.read_text().replace("test167", "node2"))
    result = builder_cli("seed", "--all", "--format", "dir")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["seeds/test166", "seeds/node2"]
    meta_data = (tmp_path / "seeds" / "node2" / "meta-data").read_text().splitlines()
    assert meta_data[1] == "local-hostname: node2"
    # The node's own hosts file names it: it comes from the same cluster.yaml.
    hosts = (tmp_path / "seeds" / "node2" / "user-data").read_text()
    assert "10.86.255.167 node2\n" in hosts
    assert "test167" not in hosts + (tmp_path / "seeds" / "test166" / "user-data").read_text()


def test_init_refuses_a_non_empty_directory(builder_cli: CliRun, tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("mine")
    result = builder_cli("init", "taken")
    assert result.returncode == 2
    assert result.stderr.splitlines()[0] == "error: taken: exists and is not empty"
    assert (tmp_path / "taken" / "file").read_text() == "mine"


def test_init_copy_loads_and_matches_the_default(builder_cli: CliRun, tmp_path: Path) -> None:
    assert builder_cli("init", "mine").returncode == 0
    written = _tree(tmp_path / "mine")
    assert sorted(written) == ["cluster.yaml", "os.yaml", "roles/master.yaml", "roles/slave.yaml"]
    assert written == _tree(embedded_config_dir())
    result = builder_cli(
        "--config", "mine", "render", "master", "--packer-version", "1.6.6", "--out", "out"
    )
    assert result.returncode == 0, result.stderr
    assert _tree(tmp_path / "out") == _tree(REPO / "tests" / "golden" / "packer-1.6" / "master")


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
