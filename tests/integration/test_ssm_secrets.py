"""EC2 nodes' secrets through SSM Parameter Store: `builder secrets push`, then the seed's
own fetch_secrets.py, against moto as a server on loopback with IAM enforced.

moto checks every call's SigV4 signature (recomputed with botocore) and, for the
role's STS credentials, the session token, and applies the IAM policies' actions;
it does not scope SSM actions to resources (it evaluates them against `*`), so
the per-node `Resource` of `builder secrets policy` is not proven here (DESIGN.md,
"Secrets"). The instance metadata service is tests/integration/imds.py (IMDSv2
only). The fetcher runs under this host's python 3, and under pyenv's 2.7 and 3.6
where the machine has them (`centos_pythons`).
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from builder.config.cluster import EXECUTOR_KEY_FILE
from builder.config.secrets import load_secrets
from builder.firstboot import ssm_secrets
from tests.conftest import write_sample_secrets
from tests.integration.awsemu import MotoServer, client
from tests.integration.imds import InstanceMetadata, serving
from tests.seed_files import user_data_document, written_files

pytestmark = pytest.mark.integration
REGION = "eu-west-1"
TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "ec2.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}


def _allow(*actions: str) -> str:
    # moto evaluates SSM actions against the resource "*" only: a node-scoped Resource
    # would deny everything here
    statement = {"Effect": "Allow", "Action": list(actions), "Resource": "*"}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


@pytest.fixture(scope="module")
def aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """moto with an admin user allowed SSM, the node role (GetParameters) and a role
    without it, their STS credentials; IAM enforced from then on."""
    server = MotoServer(tmp_path_factory.mktemp("moto-iam") / "moto.log")
    try:
        iam = client("iam", REGION, server.url)
        sts = client("sts", REGION, server.url)
        iam.create_user(UserName="admin")
        iam.put_user_policy(UserName="admin", PolicyName="ssm", PolicyDocument=_allow("ssm:*"))
        key = iam.create_access_key(UserName="admin")["AccessKey"]
        roles = {}
        for role, actions in (("node", ("ssm:GetParameters",)), ("other", ("ssm:GetParameter",))):
            arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(TRUST))[
                "Role"
            ]["Arn"]
            iam.put_role_policy(RoleName=role, PolicyName="ssm", PolicyDocument=_allow(*actions))
            found = sts.assume_role(RoleArn=arn, RoleSessionName=f"i-{role}")["Credentials"]
            roles[role] = {
                "AccessKeyId": found["AccessKeyId"],
                "SecretAccessKey": found["SecretAccessKey"],
                "Token": found["SessionToken"],
                "Expiration": found["Expiration"].strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        server.enforce_auth()
        admin = {
            "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
        }
        yield {"url": server.url, "admin": admin, "roles": roles}
    finally:
        server.stop()


def builder(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    environment |= {"AWS_EC2_METADATA_DISABLED": "true", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "builder", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=300,
        check=False,
    )


def centos_pythons() -> list[str]:
    """Pythons as CentOS 7 has them, where this machine has them too: its own 2.7 and its
    python3 package's 3.6, as pyenv's builds (the machines CI runs on carry them). Debian
    12 packages neither and the test command cannot install them (no registry has them),
    so a machine without them runs the fetcher under its python3 alone."""
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    builds = [sorted(root.glob(f"versions/{version}.*/bin/python")) for version in ("2.7", "3.6")]
    return [str(found[-1]) for found in builds if found]


def fetch(
    seed: Path, root: Path, imds: str, ssm: str, python: str = "python3"
) -> tuple[subprocess.CompletedProcess[str], dict[str, tuple[bytes, str]]]:
    """What the node does at first boot: the seed's fetcher with the seed's manifest."""
    files = written_files(user_data_document(seed.read_bytes()))
    work = root.parent / f"{root.name}-seed"
    work.mkdir(exist_ok=True)
    fetcher, manifest = work / "fetcher", work / "manifest.json"
    fetcher.write_bytes(files[ssm_secrets.FETCHER][0])
    manifest.write_bytes(files[ssm_secrets.MANIFEST][0])
    root.mkdir(exist_ok=True)
    environment = {
        "PATH": os.environ["PATH"],
        "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds,
        "AWS_ENDPOINT_URL_SSM": ssm,
    }
    result = subprocess.run(
        [python, str(fetcher), "--root", str(root), str(manifest)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    on_root = {
        "/" + str(path.relative_to(root)): (path.read_bytes(), f"{path.stat().st_mode & 0o777:04o}")
        for path in root.rglob("*")
        if path.is_file()
    }
    return result, on_root


def _config(tmp_path: Path, config_copy: Path) -> Path:
    write_sample_secrets(config_copy)
    with (config_copy / "cluster.yaml").open("a") as handle:
        handle.write(f"ssm_secrets:\n  region: {REGION}\n  prefix: /test/secrets\n")
    return config_copy


def test_push_then_first_boot_fetch(aws: dict[str, Any], config_copy: Path, tmp_path: Path) -> None:
    config = _config(tmp_path, config_copy)
    base = ["--config", str(config)]
    push = ("secrets", "push", "--endpoint-url", aws["url"])
    # -v: builder's debug logging (AWS's libraries log whole requests there) shows none either
    pushed = builder("-v", *base, *push, cwd=tmp_path, env=aws["admin"])
    assert pushed.returncode == 0, pushed.stderr
    assert "/test/secrets/reference in eu-west-1:" in pushed.stdout
    again = builder(
        *base, "secrets", "push", "--endpoint-url", aws["url"], cwd=tmp_path, env=aws["admin"]
    )
    assert again.returncode == 0, again.stderr
    assert " 0 parameters written," in again.stdout, again.stdout
    assert " 0 deleted" in again.stdout, again.stdout
    for fmt, out in (("ec2", "ec2"), ("dir", "dir")):
        made = builder(
            *base, "seed", "--all", "--format", fmt, "--out", str(tmp_path / out), cwd=tmp_path
        )
        assert made.returncode == 0, made.stderr
    secrets = load_secrets(config)
    assert secrets is not None
    node_role = InstanceMetadata("node", aws["roles"]["node"])
    pythons = centos_pythons()
    with serving(node_role) as imds:
        for node, python in (
            ("test166", "python3"),
            ("test167", "python3"),
            *(("test166", found) for found in pythons),
        ):
            seed = tmp_path / "ec2" / f"{node}.user-data"
            root = tmp_path / f"root-{node}-{len(python)}-{abs(hash(python))}"
            result, on_root = fetch(seed, root, imds, aws["url"], python)
            assert result.returncode == 0, (python, result.stderr)
            assert result.stderr == "", (python, result.stderr)
            # byte for byte the secret files an embedding seed writes, root-only, and the
            # executors' key every user reads (0644, as the embedding seed has it)
            embedded = written_files(
                user_data_document((tmp_path / "dir" / node / "user-data").read_bytes())
            )
            expected = {
                path: entry
                for path, entry in embedded.items()
                if entry[1] == "0600" or path == EXECUTOR_KEY_FILE
            }
            assert expected[EXECUTOR_KEY_FILE][1] == "0644"
            assert on_root == expected
            assert len(expected) >= 3
    assert all(status == 200 for _, _, status in node_role.requests)
    outputs = pushed.stdout + pushed.stderr + again.stdout + again.stderr
    assert "running: openssl" in pushed.stderr  # -v was on
    stored = [p["Value"] for p in _parameters_under(aws, "/test/secrets")]
    assert stored  # the base64 forms, as they went over the wire
    assert not any(value in outputs for value in [*secrets.values.values(), *stored])


def test_what_fails_writes_nothing(aws: dict[str, Any], config_copy: Path, tmp_path: Path) -> None:
    config = _config(tmp_path, config_copy)
    base = ["--config", str(config)]
    push = ("secrets", "push", "--endpoint-url", aws["url"])
    assert builder(*base, *push, cwd=tmp_path, env=aws["admin"]).returncode == 0
    made = builder(
        *base, "seed", "test166", "--format", "ec2", "--out", str(tmp_path / "ec2"), cwd=tmp_path
    )
    assert made.returncode == 0, made.stderr
    seed = tmp_path / "ec2" / "test166.user-data"
    roles = aws["roles"]
    # a role that may not GetParameters; credentials whose secret is wrong (moto recomputes
    # the signature); a session token that is not the one STS gave
    cases = {
        "denied": (roles["other"], "AccessDenied"),
        "forged": ({**roles["node"], "SecretAccessKey": "x" * 40}, "SignatureDoesNotMatch"),
        "token": ({**roles["node"], "Token": "not-the-token"}, "InvalidClientTokenId"),
    }
    for name, (credentials, code) in cases.items():
        with serving(InstanceMetadata("node", credentials)) as imds:
            result, on_root = fetch(seed, tmp_path / name, imds, aws["url"])
        assert result.returncode == 1, (name, result.stdout, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, (name, lines)
        assert code in lines[0], (name, lines)
        assert lines[0].startswith("builder: secrets not fetched: SSM GetParameters in eu-west-1:")
        assert on_root == {}, name
    # only the last file's parameter changed (edited in the console, pushed from another
    # config): every value is checked before any file is written, so none is
    files = written_files(user_data_document(seed.read_bytes()))
    last = json.loads(files[ssm_secrets.MANIFEST][0])["files"][-1]["parameter"]
    _admin_client(aws).put_parameter(
        Name=last, Value=base64.b64encode(b"edited").decode(), Type="SecureString", Overwrite=True
    )
    with serving(InstanceMetadata("node", roles["node"])) as imds:
        result, on_root = fetch(seed, tmp_path / "last", imds, aws["url"])
    assert result.returncode == 1
    assert f"{last} is not what this seed was made with" in result.stderr, result.stderr
    assert on_root == {}
    # secrets rotated and the node seeded again, but not pushed: the parameters are not
    # what the seed was made for
    assert builder(*base, "secrets", "rotate", cwd=tmp_path).returncode == 0
    made = builder(
        *base, "seed", "test166", "--format", "ec2", "--out", str(tmp_path / "ec2"), cwd=tmp_path
    )
    assert made.returncode == 0, made.stderr
    with serving(InstanceMetadata("node", roles["node"])) as imds:
        result, on_root = fetch(seed, tmp_path / "stale", imds, aws["url"])
    assert result.returncode == 1
    assert "is not what this seed was made with" in result.stderr, result.stderr
    assert on_root == {}
    # a push the caller may not make: one line, no value in it
    refused = builder(
        *base,
        *push,
        cwd=tmp_path,
        env={
            "AWS_ACCESS_KEY_ID": roles["other"]["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": roles["other"]["SecretAccessKey"],
            "AWS_SESSION_TOKEN": roles["other"]["Token"],
        },
    )
    # moto answers this JSON-protocol call with an XML error, which botocore reads as code
    # "403" (a failure, exit 1); AWS's JSON AccessDeniedException is exit 2 (tests/unit)
    assert refused.returncode in (1, 2), refused.stderr
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert "AccessDenied" in lines[0], lines
    secrets = load_secrets(config)
    assert secrets is not None
    assert not any(value in refused.stderr for value in secrets.values.values())


def test_push_deletes_what_no_node_uses(
    aws: dict[str, Any], config_copy: Path, tmp_path: Path
) -> None:
    config = _config(tmp_path, config_copy)
    base = ["--config", str(config)]
    cluster = config / "cluster.yaml"
    cluster.write_text(cluster.read_text().replace("/test/secrets", "/test/moved"))
    push = ("secrets", "push", "--endpoint-url", aws["url"])
    first = builder(*base, *push, cwd=tmp_path, env=aws["admin"])
    assert first.returncode == 0, first.stderr
    cluster.write_text(cluster.read_text().replace("test167", "test168"))
    second = builder(*base, *push, cwd=tmp_path, env=aws["admin"])
    assert second.returncode == 0, second.stderr
    ssm = _admin_client(aws)  # moto enforces IAM now
    names: set[str] = set()
    for page in ssm.get_paginator("get_parameters_by_path").paginate(
        Path="/test/moved", Recursive=True
    ):
        names.update(p["Name"] for p in page["Parameters"])
    assert not any("/test167/" in name for name in names)
    agent = {n for n in names if "/test168/" in n}
    assert agent
    written = re.search(r": (\d+) parameters written, \d+ unchanged, (\d+) deleted", second.stdout)
    assert written, second.stdout
    # test168 is new, test167's parameters went: as many (both agents)
    assert (int(written[1]), int(written[2])) == (len(agent), len(agent))


def _parameters_under(aws: dict[str, Any], path: str) -> list[dict[str, Any]]:
    ssm = _admin_client(aws)  # moto enforces IAM now
    pages = ssm.get_paginator("get_parameters_by_path").paginate(
        Path=path, Recursive=True, WithDecryption=True
    )
    return [parameter for page in pages for parameter in page["Parameters"]]


def _admin_client(aws: dict[str, Any]) -> Any:
    import boto3

    return boto3.client(
        "ssm",
        region_name=REGION,
        endpoint_url=aws["url"],
        aws_access_key_id=aws["admin"]["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=aws["admin"]["AWS_SECRET_ACCESS_KEY"],
    )
