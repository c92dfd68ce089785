"""`builder publish` against moto running as a server on loopback, through real boto3.

moto checks less than AWS (see DESIGN.md, "AMI publishing"): it keeps every
block it is sent and returns it, but does not verify checksums, ignores
encryption and most RegisterImage parameters, and completes copies at once.
So these tests read every block back and compare it with the image, compute
the LINEAR checksum independently, and check the RegisterImage parameters in
the requests the fault proxy saw on the wire.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from builder.config.load import embedded_config_dir
from builder.config.secrets import load_secrets, write_secrets
from tests.integration.awsemu import (
    BLOCK,
    CREDENTIALS,
    MotoServer,
    client,
    read_back,
    scattered,
    sparse_image,
)
from tests.integration.faultproxy import FaultProxy, Faults

pytestmark = pytest.mark.integration
GIB = 1024**3
MIB = 1024**2
ACCOUNT = "111122223333"


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = MotoServer(tmp_path_factory.mktemp("moto") / "moto.log")
    yield server
    server.stop()


def publish(
    endpoint: str, *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        **CREDENTIALS,
        "AWS_EC2_METADATA_DISABLED": "true",
        "BUILDER_PROGRESS_INTERVAL": "0.2",
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "builder", "publish", *args, "--endpoint-url", endpoint],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def images_named(endpoint: str, region: str, name: str) -> list[dict[str, Any]]:
    ec2 = client("ec2", region, endpoint)
    found = ec2.describe_images(Owners=["self"], Filters=[{"Name": "name", "Values": [name]}])
    return list(found["Images"])


def test_publish_end_to_end(moto: MotoServer, tmp_path: Path) -> None:
    """2 GiB sparse, 300 MiB of data in 12 regions straddling block boundaries; two
    regions, sharing, SSM; every block read back; a re-run does nothing; prune; the
    cluster's secrets, beside the config, nowhere in AWS."""
    config = tmp_path / "roles-config"  # where builder looks first, run from tmp_path
    shutil.copytree(embedded_config_dir(), config, ignore=shutil.ignore_patterns("__*"))
    write_secrets(config, rotate=False)
    image = tmp_path / "master.raw"
    data = sparse_image(image, 2 * GIB, scattered(2 * GIB, 300 * MIB, 12))
    assert data == 300 * MIB
    args = [
        "master",
        "--image",
        str(image),
        "--region",
        "us-east-1",
        "--copy-to",
        "eu-west-1",
        "--share",
        ACCOUNT,
        "--ssm-prefix",
        "/e2e",
    ]
    first = publish(moto.url, *args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    manifest = json.loads((tmp_path / "master.raw.publish.json").read_text())
    assert set(manifest["regions"]) == {"us-east-1", "eu-west-1"}
    assert "upload snap-" in first.stderr
    assert "MiB/s" in first.stderr

    ebs = client("ebs", "us-east-1", moto.url)
    counts = read_back(ebs, manifest["snapshot"]["id"], image, encrypted=False)
    assert manifest["snapshot"]["checksum_linear_sha256"] == counts.linear
    assert counts.present == manifest["snapshot"]["blocks"]
    # 300 MiB in 12 regions, each straddling a boundary at both ends: 600 blocks + 12.
    assert counts.present == 612
    assert counts.absent == 2 * GIB // BLOCK - 612

    for region, entry in manifest["regions"].items():
        ec2 = client("ec2", region, moto.url)
        (ami,) = images_named(moto.url, region, manifest["name"])
        assert ami["ImageId"] == entry["image_id"]
        tags = {t["Key"]: t["Value"] for t in ami["Tags"]}
        assert tags["builder:role"] == "master"
        assert tags["builder:input-digest"] == manifest["input_digest"]
        launch = ec2.describe_image_attribute(ImageId=ami["ImageId"], Attribute="launchPermission")
        assert launch["LaunchPermissions"] == [{"UserId": ACCOUNT}]
        for snapshot in entry["snapshots"]:
            permissions = ec2.describe_snapshot_attribute(
                SnapshotId=snapshot, Attribute="createVolumePermission"
            )["CreateVolumePermissions"]
            assert {"UserId": ACCOUNT} in permissions
        parameter = client("ssm", region, moto.url).get_parameter(Name="/e2e/master/latest")
        assert parameter["Parameter"]["Value"] == ami["ImageId"]
        assert parameter["Parameter"]["Version"] == 1

    again = publish(moto.url, *args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("(found)") == 2
    assert "upload" not in again.stderr
    for region in manifest["regions"]:
        assert len(images_named(moto.url, region, manifest["name"])) == 1
        parameter = client("ssm", region, moto.url).get_parameter(Name="/e2e/master/latest")
        assert parameter["Parameter"]["Version"] == 1  # unchanged: not written again

    # A newer image of the role, then prune to one per region.
    second = since_next_second()
    newer = tmp_path / "newer.raw"
    sparse_image(newer, 64 * MIB, [(0, 2 * MIB)], seed=second)
    published = publish(
        moto.url,
        "master",
        "--image",
        str(newer),
        "--region",
        "us-east-1",
        "--copy-to",
        "eu-west-1",
        "--ssm-prefix",
        "/e2e",
        cwd=tmp_path,
    )
    assert published.returncode == 0, published.stderr
    newer_manifest = json.loads((tmp_path / "newer.raw.publish.json").read_text())
    for region, entry in newer_manifest["regions"].items():
        parameter = client("ssm", region, moto.url).get_parameter(Name="/e2e/master/latest")
        assert parameter["Parameter"]["Value"] == entry["image_id"]
        assert parameter["Parameter"]["Version"] == 2
    prune = ["master", "--region", "us-east-1", "--copy-to", "eu-west-1", "--prune", "--keep", "1"]
    dry = publish(moto.url, *prune, "--dry-run", cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    outputs = [first, again, published, dry]
    secret_values_stay_out_of_aws(moto.url, config, tmp_path, outputs)
    for region, entry in manifest["regions"].items():
        assert f"{region}: would deregister {entry['image_id']}" in dry.stdout
        assert len(images_named(moto.url, region, manifest["name"])) == 1
    assert newer_manifest["regions"]["us-east-1"]["image_id"] not in dry.stdout
    done = publish(moto.url, *prune, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    for region, entry in manifest["regions"].items():
        assert images_named(moto.url, region, manifest["name"]) == []
        ec2 = client("ec2", region, moto.url)
        left = {s["SnapshotId"] for s in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]}
        assert not set(entry["snapshots"]) & left
        assert images_named(moto.url, region, newer_manifest["name"])


def aws_state(endpoint: str, regions: list[str]) -> str:
    """Everything the account holds that a secret could have gone into: images with their
    tags and descriptions, snapshots, every tag, and every SSM parameter, decrypted."""
    found = []
    for region in regions:
        ec2, ssm = client("ec2", region, endpoint), client("ssm", region, endpoint)
        found += [
            ec2.describe_images(Owners=["self"]),
            ec2.describe_snapshots(OwnerIds=["self"]),
            ec2.describe_tags(),
            ssm.get_parameters_by_path(Path="/", Recursive=True, WithDecryption=True),
        ]
    return json.dumps(found, default=str)


def secret_values_stay_out_of_aws(
    endpoint: str,
    config: Path,
    work: Path,
    outputs: list[subprocess.CompletedProcess[str]],
) -> None:
    secrets = load_secrets(config)
    assert secrets is not None
    values = list(secrets.values.values())
    regions = ["us-east-1", "eu-west-1"]
    printed = "".join(result.stdout + result.stderr for result in outputs)
    manifests = "".join(path.read_text() for path in work.glob("*.publish.json"))
    for text in (aws_state(endpoint, regions), printed, manifests):
        assert [value for value in values if value in text] == []
    # The search reaches where a secret would be: a tag and a parameter holding one.
    ec2, ssm = client("ec2", regions[1], endpoint), client("ssm", regions[1], endpoint)
    [image] = ec2.describe_images(Owners=["self"])["Images"][:1]
    ec2.create_tags(Resources=[image["ImageId"]], Tags=[{"Key": "k", "Value": values[0]}])
    ssm.put_parameter(Name="/control/secret", Value=values[1], Type="SecureString")
    state = aws_state(endpoint, regions)
    assert [value for value in values if value in state] == values[:2]
    ec2.delete_tags(Resources=[image["ImageId"]], Tags=[{"Key": "k"}])
    ssm.delete_parameter(Name="/control/secret")


def since_next_second() -> int:
    """Wait for the next whole second (AMI creation dates have seconds) and return it."""
    start = int(time.time())
    while int(time.time()) == start:
        time.sleep(0.05)
    return start + 1


def test_publish_encrypted_uploads_zero_blocks(moto: MotoServer, tmp_path: Path) -> None:
    """Encrypted: an absent block would not read back as zeros, so every block is sent."""
    image = tmp_path / "slave.raw"
    sparse_image(image, 48 * MIB, scattered(48 * MIB, 6 * MIB, 3))
    result = publish(
        moto.url,
        "slave",
        "--image",
        str(image),
        "--region",
        "us-east-1",
        "--encrypted",
        "--name",
        "encrypted-slave",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "slave.raw.publish.json").read_text())
    assert manifest["snapshot"]["encrypted"] is True
    counts = read_back(
        client("ebs", "us-east-1", moto.url), manifest["snapshot"]["id"], image, encrypted=True
    )
    assert counts.absent == 0
    assert counts.present == 48 * MIB // BLOCK
    assert counts.zero_present > 0
    # The check itself fails on a changed image: one byte of a hole now set.
    with image.open("r+b") as handle:
        handle.seek(40 * MIB + 7)
        handle.write(b"\1")
    with pytest.raises(AssertionError, match="differs from the image"):
        read_back(client("ebs", "us-east-1", moto.url), manifest["snapshot"]["id"], image, True)


def test_publish_through_faults(moto: MotoServer, tmp_path: Path) -> None:
    """Throttling (real shapes), 500s, slow answers past the read timeout and dropped
    connections on a fraction of requests: the publish completes, every block right."""
    image = tmp_path / "faulty.raw"
    sparse_image(image, 256 * MIB, scattered(256 * MIB, 48 * MIB, 4), seed=11)
    faults = Faults(throttle=0.06, error=0.05, drop=0.05, slow=0.04, slow_seconds=4.0, seed=3)
    proxy = FaultProxy(moto.url, faults)
    try:
        result = publish(
            proxy.url,
            "slave",
            "--image",
            str(image),
            "--region",
            "us-east-1",
            "--copy-to",
            "eu-west-1",
            "--share",
            ACCOUNT,
            "--name",
            "faulty-slave",
            "--ssm-prefix",
            "/faults",
            cwd=tmp_path,
            env={"BUILDER_AWS_TIMEOUT": "3"},
        )
    finally:
        proxy.close()
    assert result.returncode == 0, result.stderr
    outcomes = {record.outcome for record in proxy.seen}
    assert {"throttle", "error", "drop", "slow", "pass"} <= outcomes
    retries = [line for line in result.stderr.splitlines() if line.startswith("retry ")]
    assert "throttled: at most" in result.stderr  # fewer blocks in flight
    assert any("ThrottlingException" in line for line in retries)
    assert any("RequestLimitExceeded" in line for line in retries)
    assert any("InternalError" in line or "InternalFailure" in line for line in retries)
    assert any("Timeout" in line or "Connection" in line for line in retries)
    manifest = json.loads((tmp_path / "faulty.raw.publish.json").read_text())
    ebs = client("ebs", "us-east-1", moto.url)
    counts = read_back(ebs, manifest["snapshot"]["id"], image, encrypted=False)
    assert manifest["snapshot"]["checksum_linear_sha256"] == counts.linear
    for region in ("us-east-1", "eu-west-1"):
        assert len(images_named(moto.url, region, "faulty-slave")) == 1
    # What RegisterImage carried on the wire (moto itself ignores these parameters).
    register = [b for b in proxy.bodies if b.get("Action") == "RegisterImage"]
    assert register
    sent = register[-1]
    assert sent["Architecture"] == "x86_64"
    assert sent["VirtualizationType"] == "hvm"
    assert sent["BootMode"] == "legacy-bios"
    assert sent["EnaSupport"] == "true"
    assert sent["SriovNetSupport"] == "simple"
    assert sent["ImdsSupport"] == "v2.0"
    assert sent["BlockDeviceMapping.1.Ebs.VolumeType"] == "gp3"
    assert sent["BlockDeviceMapping.1.Ebs.SnapshotId"] == manifest["snapshot"]["id"]


def test_publish_denied_fails_at_once(moto: MotoServer, tmp_path: Path) -> None:
    image = tmp_path / "denied.raw"
    sparse_image(image, 16 * MIB, [(0, 1 * MIB)], seed=5)
    proxy = FaultProxy(moto.url, Faults(deny=frozenset({"RegisterImage"})))
    try:
        result = publish(
            proxy.url,
            "master",
            "--image",
            str(image),
            "--region",
            "us-east-1",
            "--name",
            "denied-master",
            cwd=tmp_path,
        )
    finally:
        proxy.close()
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: RegisterImage denied-master in us-east-1: UnauthorizedOperation: "
        "You are not authorized."
    ]
    assert "Traceback" not in result.stderr
    assert [r.action for r in proxy.seen].count("RegisterImage") == 1
    # The snapshot whose registration failed is gone.
    ec2 = client("ec2", "us-east-1", moto.url)
    snapshots = ec2.describe_snapshots(
        OwnerIds=["self"], Filters=[{"Name": "tag:Name", "Values": ["denied-master"]}]
    )["Snapshots"]
    assert snapshots == []


def test_publish_interrupted_then_resumed(moto: MotoServer, tmp_path: Path) -> None:
    """Killed half-way through the upload: no AMI on the incomplete snapshot; the next run
    deletes that snapshot, uploads afresh and registers exactly one AMI."""
    image = tmp_path / "killed.raw"
    sparse_image(image, 128 * MIB, scattered(128 * MIB, 32 * MIB, 2), seed=13)
    proxy = FaultProxy(moto.url, Faults(slow=1.0, slow_seconds=0.05))
    environment = {
        **os.environ,
        **CREDENTIALS,
        "AWS_EC2_METADATA_DISABLED": "true",
        "BUILDER_PROGRESS_INTERVAL": "0.1",
    }
    args = ["master", "--image", str(image), "--region", "us-east-1", "--name", "killed-master"]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "builder",
            "publish",
            *args,
            "--workers",
            "2",
            "--endpoint-url",
            proxy.url,
        ],
        cwd=tmp_path,
        env=environment,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    assert process.stderr is not None
    lines = []
    try:
        for line in process.stderr:
            lines.append(line)
            if line.startswith("upload snap-"):
                done = int(line.rsplit(", ", 1)[1].split("/")[0])
                if done >= 16:
                    process.send_signal(signal.SIGKILL)
                    break
    finally:
        process.wait(timeout=120)
        proxy.close()
    assert process.returncode == -signal.SIGKILL, "".join(lines)
    assert images_named(moto.url, "us-east-1", "killed-master") == []
    ec2 = client("ec2", "us-east-1", moto.url)
    started = ec2.describe_snapshots(
        OwnerIds=["self"], Filters=[{"Name": "tag:Name", "Values": ["killed-master"]}]
    )["Snapshots"]
    assert len(started) == 1
    left = started[0]["SnapshotId"]
    assert {t["Key"]: t["Value"] for t in started[0]["Tags"]}["builder:upload"] == "started"

    again = publish(moto.url, *args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert f"deleting {left}" in again.stderr
    (ami,) = images_named(moto.url, "us-east-1", "killed-master")
    manifest = json.loads((tmp_path / "killed.raw.publish.json").read_text())
    assert manifest["regions"]["us-east-1"]["image_id"] == ami["ImageId"]
    assert manifest["snapshot"]["id"] != left
    snapshots = ec2.describe_snapshots(
        OwnerIds=["self"],
        Filters=[
            {"Name": "tag:Name", "Values": ["killed-master"]},
            {"Name": "tag-key", "Values": ["builder:upload"]},
        ],
    )["Snapshots"]
    assert [s["SnapshotId"] for s in snapshots] == [manifest["snapshot"]["id"]]
    read_back(client("ebs", "us-east-1", moto.url), manifest["snapshot"]["id"], image, False)
