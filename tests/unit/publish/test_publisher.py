"""`builder publish` refusing bad input: one line, exit 2, before any AWS call."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from builder.publish.publisher import find_image
from tests.unit.image.sample import sample_manifest

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
# Nothing listens here: a call that got this far would fail differently.
NOWHERE = "http://127.0.0.1:9"


def run(tmp_path: Path, *args: str, credentials: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        HOME=str(tmp_path),
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE=str(tmp_path / "none"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
    )
    if credentials:
        env.update(CREDENTIALS)
    return subprocess.run(
        [sys.executable, "-m", "builder", "publish", *args, "--endpoint-url", NOWHERE],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "disk.raw"
    path.write_bytes(b"\1" * 4096)
    return path


@pytest.mark.parametrize(
    ("args", "credentials", "message"),
    [
        (["--region", "us-easst-1"], True, "error: unknown AWS region 'us-easst-1'"),
        (
            ["--region", "us-east-1", "--copy-to", "mars-1"],
            True,
            "error: unknown AWS region 'mars-1'",
        ),
        ([], True, "error: no AWS region: give --region or set AWS_REGION / a profile's region"),
        (
            ["--region", "us-east-1"],
            False,
            "error: no AWS credentials found (environment, ~/.aws/credentials, --profile, "
            "instance role)",
        ),
        (
            ["--region", "us-east-1", "--profile", "nope"],
            True,
            "error: --profile nope: no such AWS profile",
        ),
        (
            ["--region", "us-east-1", "--share", "12345"],
            True,
            "error: --share '12345': an AWS account id is 12 digits",
        ),
        (
            ["--region", "us-east-1", "--name", "x"],
            True,
            "error: --name 'x': 3-128 letters, digits, spaces and ( ) [ ] . / ' @ _ -",
        ),
        (
            ["--region", "us-east-1", "--ssm-prefix", "no-slash"],
            True,
            "error: --ssm-prefix 'no-slash': a path such as /mesos-appliance",
        ),
        (
            ["--region", "us-east-1", "--prune", "--keep", "0"],
            True,
            "error: --keep must be at least 1",
        ),
        (
            ["--region", "us-east-1", "--dry-run"],
            True,
            "error: --dry-run goes with --prune (a publish always runs)",
        ),
    ],
)
def test_bad_input_is_one_line(
    tmp_path: Path, image: Path, args: list[str], credentials: bool, message: str
) -> None:
    result = run(tmp_path, "master", "--image", str(image), *args, credentials=credentials)
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines()[0] == message
    assert "Traceback" not in result.stderr


def test_no_build_and_no_image(tmp_path: Path) -> None:
    result = run(tmp_path, "master", "--region", "us-east-1")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: output/master/manifest.json: no raw image of a build of master",
        "hint: run `builder build master` or give --image PATH",
    ]


def test_the_build_manifest_names_the_image(tmp_path: Path) -> None:
    build = tmp_path / "output" / "master"
    build.mkdir(parents=True)
    (build / "mesos-master.raw").write_bytes(b"\0" * 512)
    sample_manifest(build, {"mesos-master.raw": "raw"}).write(build)
    found = find_image(tmp_path / "output", "master", None)
    assert found.path == build / "mesos-master.raw"
    assert (found.digest, found.source_iso, found.sha256) == ("d" * 64, "e" * 64, "f" * 64)
    assert found.publish_manifest == build / "publish.json"
