"""`builder secrets init|rotate`: random values in a file only its owner reads, beside the
config, refused when git tracks it; they reach seeds only, as root-only files, and no
other artifact or output (each value searched for in every file and every output)."""

from __future__ import annotations

import gzip
import subprocess
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from builder.cluster import lifecycle
from builder.config.cluster import ClusterFacts
from builder.config.load import load_config
from builder.config.secrets import (
    NODE_SECRETS_DIR,
    SECRET_NAMES,
    Secrets,
    load_secrets,
    secrets_path,
    write_secrets,
)
from builder.errors import UserError
from tests.conftest import CliRun


def _git(directory: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(directory), *args], check=True, capture_output=True)


@pytest.fixture
def repo_config(config_copy: Path) -> Path:
    """The config copy inside a git repository, committed (as a user keeps it)."""
    _git(config_copy.parent, "init", "-q", ".")
    _git(config_copy.parent, "add", ".")
    _git(config_copy.parent, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c")
    return config_copy


def test_init_makes_random_owner_only_secrets(repo_config: Path) -> None:
    path = write_secrets(repo_config, rotate=False)
    assert path == repo_config / "secrets.yaml"
    assert path.stat().st_mode & 0o777 == 0o600
    loaded = load_secrets(repo_config)
    assert loaded is not None
    assert set(loaded.values) == set(SECRET_NAMES)
    assert len(set(loaded.values.values())) == len(SECRET_NAMES)
    assert all(len(value) >= 40 for value in loaded.values.values())  # 32 random bytes
    assert not any(value in repr(loaded) for value in loaded.values.values())
    with pytest.raises(UserError, match="exists"):
        write_secrets(repo_config, rotate=False)


def test_rotate_replaces_every_value(repo_config: Path) -> None:
    with pytest.raises(UserError, match="no secrets to rotate"):
        write_secrets(repo_config, rotate=True)
    write_secrets(repo_config, rotate=False)
    before = load_secrets(repo_config)
    write_secrets(repo_config, rotate=True)
    after = load_secrets(repo_config)
    assert before is not None
    assert after is not None
    assert all(before.values[name] != after.values[name] for name in SECRET_NAMES)


def test_a_tracked_secrets_file_is_refused(repo_config: Path) -> None:
    write_secrets(repo_config, rotate=False)
    assert load_secrets(repo_config) is not None  # untracked in a repository: fine
    _git(repo_config.parent, "add", str(secrets_path(repo_config)))
    with pytest.raises(UserError, match="git tracks it") as caught:
        load_secrets(repo_config)
    with pytest.raises(UserError, match="git tracks it"):
        write_secrets(repo_config, rotate=True)
    with pytest.raises(UserError, match="git tracks it"):
        lifecycle.seed_files(
            load_config(repo_config),
            ClusterFacts.of(load_config(repo_config)),
            load_config(repo_config).config.cluster.nodes[0],
            "ssh-ed25519 K k",
            None,
        )
    assert "secrets.yaml" in str(caught.value)


def test_a_readable_or_broken_file_is_refused_without_its_values(repo_config: Path) -> None:
    path = write_secrets(repo_config, rotate=False)
    values = load_secrets(repo_config)
    assert values is not None
    path.chmod(0o640)
    with pytest.raises(UserError, match="readable by others") as readable:
        load_secrets(repo_config)
    path.chmod(0o600)
    text = path.read_text()
    first = next(iter(values.values.values()))
    path.write_text(text.replace(f": {first}", f"= {first}"))
    with pytest.raises(UserError, match=r"secrets.yaml:\d+: not a `name: value` line") as broken:
        load_secrets(repo_config)
    # a value that would break a zk URL or a flag line (`@`, `/`, `=`, a space)
    path.write_text(text.replace(f": {first}", f": {first[:8]}@/= {first[8:]}"))
    with pytest.raises(UserError, match=r"secrets.yaml:\d+: \w+: not a secret builder") as odd:
        load_secrets(repo_config)
    for error in (readable.value, broken.value, odd.value):
        shown = f"{error} {getattr(error, 'hint', '')}"
        assert not any(value in shown for value in values.values.values())


def test_a_file_from_before_the_per_principal_split_says_to_rotate(repo_config: Path) -> None:
    """An older secrets.yaml: one `mesos_secret` for the agents and both frameworks. The
    error names its line and what replaced it, never its value; rotate makes the new set."""
    path = write_secrets(repo_config, rotate=False)
    old = "mesos_secret: 0123456789abcdef-old-value\n"
    path.write_text(path.read_text() + old)
    with pytest.raises(UserError) as retired:
        load_secrets(repo_config)
    line = len(path.read_text().splitlines())
    assert str(retired.value) == (
        f"{path}:{line}: mesos_secret: no longer used: split into agent_secret, "
        "marathon_secret and chronos_secret (one per principal)"
    )
    assert retired.value.hint == "builder secrets rotate makes them all (and a new CA)"
    assert "old-value" not in f"{retired.value} {retired.value.hint}"
    write_secrets(repo_config, rotate=True)
    loaded = load_secrets(repo_config)
    assert loaded is not None
    assert set(loaded.values) == set(SECRET_NAMES)


def test_no_secrets_file_no_secrets(config_copy: Path) -> None:
    assert load_secrets(config_copy) is None
    assert load_secrets(config_copy.parent / "nowhere") is None


def _every_file(root: Path) -> dict[Path, bytes]:
    """Every file's bytes, a gzip file's (EC2 user-data over 16 KiB) unpacked."""
    files = {path: path.read_bytes() for path in root.rglob("*") if path.is_file()}
    return {
        path: gzip.decompress(data) if data.startswith(b"\x1f\x8b") else data
        for path, data in files.items()
    }


def test_secrets_reach_seeds_only_as_root_only_files(
    repo_config: Path, builder_cli: CliRun, tmp_path: Path
) -> None:
    """Every artifact and output the host-side commands make, searched for every value:
    only the seeds' user-data hold them (0600 on the host, 0600 root files on the node)."""
    config = ["--config", str(repo_config)]
    made = builder_cli(*config, "secrets", "init")
    assert made.returncode == 0, made.stderr
    secrets = load_secrets(repo_config)
    assert secrets is not None
    values = list(secrets.values.values())
    outputs = [made.stdout + made.stderr]
    work = tmp_path / "work"
    for args in (
        ("render", "master,slave", "--out", str(work / "render" / "ms")),
        ("render", "slave", "--out", str(work / "render" / "s")),
        ("seed", "--all", "--out", str(work / "iso")),
        ("seed", "--all", "--format", "dir", "--out", str(work / "dir")),
        ("seed", "--all", "--format", "ec2", "--out", str(work / "ec2")),
        ("validate",),
        ("schema",),
        ("secrets", "init"),  # refused: the error shows no value
    ):
        result = builder_cli(*config, *args)
        outputs.append(result.stdout + result.stderr)
    assert not any(value in output for value in values for output in outputs)
    holding = {
        path.relative_to(work)
        for path, data in _every_file(work).items()
        if any(value.encode() in data for value in values)
    }
    seeds = {
        *(Path("iso") / f"{n}-cidata.iso" for n in ("test166", "test167")),
        *(Path("dir") / n / "user-data" for n in ("test166", "test167")),
        *(Path("ec2") / f"{n}.user-data" for n in ("test166", "test167")),
    }
    assert holding == seeds
    for path in seeds:
        assert (work / path).stat().st_mode & 0o777 == 0o600, path
    assert all(
        (work / "dir" / "test167" / f).stat().st_mode & 0o777 == 0o600 for f in ("meta-data",)
    )
    # on the node: one root-only file per secret its roles use, with the value; test167,
    # an agent, holds neither the ZooKeeper password nor the keystores'
    for node, names in (
        ("test166", list(secrets.values)),
        ("test167", ["agent_secret", "http_password"]),
    ):
        user_data = (work / "dir" / node / "user-data").read_text()
        document = YAML(typ="safe").load(user_data)
        carried = {
            e["path"]: e for e in document["write_files"] if e["path"].startswith(NODE_SECRETS_DIR)
        }
        assert {p: (e["content"], e["owner"], e["permissions"]) for p, e in carried.items()} == {
            f"{NODE_SECRETS_DIR}/{name}": (f"{secrets.values[name]}\n", "root:root", "0600")
            for name in names
        }
        others = [value for name, value in secrets.values.items() if name not in names]
        assert not any(value in user_data for value in others), node
        # the other files holding one (credential and flag files of a secured cluster) are
        # root-only too, and every file that is not holds none
        for entry in document["write_files"]:
            if entry["permissions"] != "0600":
                assert entry["permissions"] == "0644", entry["path"]
                assert not any(value in entry["content"] for value in values), entry["path"]


def test_secrets_never_print() -> None:
    secrets = Secrets({"agent_secret": "s3cr3t-value"})
    assert "s3cr3t-value" not in repr(secrets)
    assert "s3cr3t-value" not in str(secrets)
