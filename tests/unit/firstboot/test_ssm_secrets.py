"""EC2 seeds that fetch their secrets from SSM (builder/firstboot/ssm_secrets.py and the
node's fetch_secrets.py). The fetch against moto with IAM enforced is
tests/integration/test_ssm_secrets.py."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import ClassVar

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from builder.config.load import load_config
from builder.config.secrets import load_secrets
from builder.firstboot import fetch_secrets, ssm_secrets
from builder.firstboot.seed import node_seed
from builder.firstboot.validate import validate_seed
from builder.publish.aws import describe
from builder.publish.secrets import redacted
from tests.conftest import CliRun
from tests.seed_files import user_data_document, written_files

SSM = "ssm_secrets:\n  region: eu-west-1\n"


def _with_ssm(config: Path, text: str = SSM) -> Path:
    with (config / "cluster.yaml").open("a") as handle:
        handle.write(text)
    return config


def test_ec2_seeds_carry_no_secret_only_a_manifest_of_them(
    secured_copy: Path, builder_cli: CliRun, tmp_path: Path
) -> None:
    config = ["--config", str(_with_ssm(secured_copy))]
    for fmt in ("ec2", "dir", "iso"):
        made = builder_cli(*config, "seed", "--all", "--format", fmt, "--out", str(tmp_path / fmt))
        assert made.returncode == 0, made.stderr
    secrets = load_secrets(secured_copy)
    assert secrets is not None
    for node in ("test166", "test167"):
        ec2 = user_data_document((tmp_path / "ec2" / f"{node}.user-data").read_bytes())
        embedded = user_data_document((tmp_path / "dir" / node / "user-data").read_bytes())
        files, embedded_files = written_files(ec2), written_files(embedded)
        # root's secret files, and the private keys every user reads (an executors' key)
        secret = {
            p: c for p, (c, mode) in embedded_files.items() if mode == "0600" or b"PRIVATE KEY" in c
        }
        modes = {p: mode for p, (_, mode) in embedded_files.items() if p in secret}
        # nothing secret, decoded or not: no value, no root-only file, no keystore
        assert not any(
            value.encode() in c for value in secrets.values.values() for c, _ in files.values()
        )
        assert not set(secret) & set(files)
        assert not any(content in c for content in secret.values() for c, _ in files.values())
        assert not any(b"PRIVATE KEY" in c for c, _ in files.values())
        assert modes["/etc/builder/tls/executor.key"] == "0644"
        # the rest of the seed is the embedding seed's
        assert {
            p: f for p, f in files.items() if p not in (ssm_secrets.MANIFEST, ssm_secrets.FETCHER)
        } == {p: f for p, f in embedded_files.items() if p not in secret}
        manifest = json.loads(files[ssm_secrets.MANIFEST][0])
        assert files[ssm_secrets.MANIFEST][1] == "0600"
        assert files[ssm_secrets.FETCHER] == (ssm_secrets.fetcher_source().encode(), "0755")
        assert manifest["region"] == "eu-west-1"
        assert manifest["endpoint"] == "https://ssm.eu-west-1.amazonaws.com"
        assert sorted(e["path"] for e in manifest["files"]) == sorted(secret)
        for entry in manifest["files"]:
            assert entry["parameter"] == f"/mesos-secrets/reference/{node}{entry['path']}"
            assert entry["sha256"] == hashlib.sha256(secret[entry["path"]]).hexdigest()
            assert entry["mode"] == modes[entry["path"]]
        # fetched before the firewall and every service
        assert ec2["runcmd"][0] == ssm_secrets.FETCH_OR_STOP
        assert ec2["runcmd"][1:] == embedded["runcmd"]
    # the ISO seeds still carry the secrets (they are not EC2's)
    iso = (tmp_path / "iso" / "test167-cidata.iso").read_bytes()
    assert secrets.values["agent_secret"].encode() in iso


def test_the_ssm_seed_passes_cloud_init_schema(secured_copy: Path) -> None:
    loaded = load_config(_with_ssm(secured_copy))
    secrets = load_secrets(secured_copy)
    for node in loaded.config.cluster.nodes:
        assert validate_seed(loaded, node, secrets) == []


def test_schema_problems_of_the_ssm_seed_are_found(
    secured_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """validate checks the SSM form itself: a broken runcmd item there is reported."""
    loaded = load_config(_with_ssm(secured_copy))
    secrets = load_secrets(secured_copy)
    monkeypatch.setattr(ssm_secrets, "MANIFEST", {"not": "a string"})
    problems = validate_seed(loaded, loaded.config.cluster.nodes[1], secrets)
    assert problems
    assert all("test167.user-data" in str(p) for p in problems), problems


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("security: none\n" + SSM, "a cluster with `security: none` has no secrets"),
        ("ssm_secrets:\n  region: eu-west-1\n  prefix: no-slash\n", "an SSM parameter path"),
        ("ssm_secrets:\n  region: eu-west-1\n  kms_key: mykey\n", "a KMS key"),
        (
            "ssm_secrets:\n  region: eu-west-1\n"
            "  kms_key: arn:aws:kms:eu-west-1:123456789012:alias/mesos\n",
            "IAM cannot grant by alias ARN",
        ),
        ("ssm_secrets:\n  prefix: /x\n", "region"),
    ],
)
def test_bad_ssm_settings_are_one_line(
    config_copy: Path, builder_cli: CliRun, text: str, expected: str
) -> None:
    result = builder_cli("--config", str(_with_ssm(config_copy, text)), "validate")
    assert result.returncode == 2, result.stderr
    assert "cluster.yaml" in result.stderr, result.stderr
    assert expected in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_policy_names_the_nodes_own_parameters(secured_copy: Path, builder_cli: CliRun) -> None:
    config = ["--config", str(_with_ssm(secured_copy, SSM + "  kms_key: alias/mesos\n"))]
    shown = builder_cli(*config, "secrets", "policy", "test167", "--account", "123456789012")
    assert shown.returncode == 0, shown.stderr
    statements = json.loads(shown.stdout)["Statement"]
    assert statements[0] == {
        "Effect": "Allow",
        "Action": "ssm:GetParameters",
        "Resource": "arn:aws:ssm:eu-west-1:123456789012:parameter"
        "/mesos-secrets/reference/test167/*",
    }
    assert statements[1]["Action"] == ["kms:Decrypt"]
    assert statements[1]["Condition"] == {
        "StringEquals": {"kms:ViaService": "ssm.eu-west-1.amazonaws.com"}
    }
    assert statements[1]["Resource"] == "arn:aws:kms:eu-west-1:123456789012:key/*"
    push = json.loads(builder_cli(*config, "secrets", "policy", "--push").stdout)["Statement"]
    cluster = "arn:aws:ssm:eu-west-1:*:parameter/mesos-secrets/reference"
    assert push[0] == {
        "Effect": "Allow",
        "Action": "ssm:GetParametersByPath",
        "Resource": [cluster, f"{cluster}/*"],  # the path itself is what AWS checks
    }
    assert push[1]["Resource"] == f"{cluster}/*"
    assert push[2]["Action"] == ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"]
    for args, expected in (
        (("secrets", "policy", "test999"), "no node 'test999'"),
        (("secrets", "policy", "test167", "--account", "12"), "12-digit"),
        (("secrets", "policy"), "name a node, or --push"),
        (("secrets", "policy", "test167", "--push"), "name a node, or --push"),
    ):
        refused = builder_cli(*config, *args)
        assert refused.returncode == 2, refused.stderr
        assert expected in refused.stderr, refused.stderr


def test_push_without_ssm_secrets_is_refused(secured_copy: Path, builder_cli: CliRun) -> None:
    refused = builder_cli("--config", str(secured_copy), "secrets", "push")
    assert refused.returncode == 2
    assert refused.stderr.startswith("error: cluster.yaml has no ssm_secrets"), refused.stderr


def test_signature_is_botocores() -> None:
    """The node's hand-written Signature Version 4 agrees with botocore's for the same call,
    with and without a session token."""
    body = b'{"Names": ["/a/b"], "WithDecryption": true}'
    for token in ("", "session-token-value"):
        credentials = ("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
        ours = fetch_secrets.signed_headers(
            credentials,
            "eu-west-1",
            "https://ssm.eu-west-1.amazonaws.com",
            "AmazonSSM.GetParameters",
            body,
            "20261204T183005Z",
        )
        request = AWSRequest(
            method="POST",
            url="https://ssm.eu-west-1.amazonaws.com/",
            data=body,
            headers={k: v for k, v in ours.items() if k != "authorization"},
        )
        request.context["timestamp"] = ours["x-amz-date"]
        auth = SigV4Auth(Credentials(*credentials[:2], token or None), "ssm", "eu-west-1")
        canonical = auth.canonical_request(request)
        expected = auth.signature(auth.string_to_sign(request, canonical), request)
        assert ours["authorization"].endswith(f"Signature={expected}")
        assert (
            "x-amz-security-token" in ours["authorization"].split("SignedHeaders=")[1] or not token
        )


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            b'{"__type": "com.amazon#AccessDeniedException", "message": "no"}',
            "AccessDeniedException: no",
        ),
        (
            b"<Error><Code>AccessDenied</Code><Message>not\n allowed</Message></Error>",
            "AccessDenied: not allowed",
        ),
        (b"<html>\nbad gateway", "HTTP 502: <html>"),
        (b"", "HTTP 502"),
    ],
)
def test_aws_errors_are_one_line(body: bytes, expected: str) -> None:
    assert fetch_secrets.aws_error(502, body)[1] == expected


def test_errors_hold_no_value_we_sent() -> None:
    assert redacted("Value 'abc123' at 'value' failed", ["abc123"]) == (
        "Value '<redacted>' at 'value' failed"
    )

    class Unparsed(Exception):
        response: ClassVar[dict[str, dict[str, str]]] = {
            "Error": {"Code": "403", "Message": "<?xml?>\n<Error>\n</Error>"}
        }

    assert describe(Unparsed()) == "403: <?xml?> <Error> </Error>"


@pytest.mark.parametrize(
    ("region", "arn", "host"),
    [
        ("eu-west-1", "arn:aws:ssm:eu-west-1:", "ssm.eu-west-1.amazonaws.com"),
        ("cn-north-1", "arn:aws-cn:ssm:cn-north-1:", "ssm.cn-north-1.amazonaws.com.cn"),
        ("us-gov-west-1", "arn:aws-us-gov:ssm:us-gov-west-1:", "ssm.us-gov-west-1.amazonaws.com"),
    ],
)
def test_policies_and_endpoints_follow_the_partition(region: str, arn: str, host: str) -> None:
    assert ssm_secrets.parameter_arn(region, "123456789012", "/a/b").startswith(arn)
    assert ssm_secrets.parameter_arn(region, "123456789012", "/a/b").endswith(":parameter/a/b")
    assert ssm_secrets.ssm_host(region) == host
    assert ssm_secrets.endpoint(region) == f"https://{host}"


# The stack's commands as runcmd runs them: these record their calls instead.
FAKE_COMMAND = '#!/bin/sh\necho "$(basename "$0") $*" >> "$CALLS"\n'


@pytest.mark.parametrize("fetched", [False, True], ids=["fetch-fails", "fetch-succeeds"])
def test_a_failed_fetch_stops_runcmd_before_the_firewall_and_services(
    secured_copy: Path, tmp_path: Path, fetched: bool
) -> None:
    """runcmd as cloud-init runs it: its own shellify (Debian's cloud-init, the same
    function as 18.5's) into one sh script. A fetch that fails ends it: no firewall reload,
    no unit enabled or started; one that succeeds goes on (the fakes are reached)."""
    loaded = load_config(_with_ssm(secured_copy))
    secrets = load_secrets(secured_copy)
    seed = node_seed(loaded, loaded.config.cluster.nodes[0], secrets=secrets, from_ssm=True)
    runcmd = user_data_document(seed.user_data.encode())["runcmd"]
    assert runcmd[0] == ssm_secrets.FETCH_OR_STOP
    fetcher = tmp_path / "fetcher"
    fetcher.write_text(f"#!/bin/sh\nexit {0 if fetched else 1}\n")
    fetcher.chmod(0o755)
    runcmd[0] = runcmd[0].replace(ssm_secrets.FETCHER, str(fetcher))
    shellify = "import json, sys\nfrom cloudinit import util\n"
    shellify += "sys.stdout.write(util.shellify(json.load(sys.stdin)))"
    script = subprocess.run(
        ["/usr/bin/python3", "-c", shellify],
        input=json.dumps(runcmd),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    fakes = tmp_path / "bin"
    fakes.mkdir()
    for name in ("systemctl", "firewall-cmd"):
        (fakes / name).write_text(FAKE_COMMAND)
        (fakes / name).chmod(0o755)
    calls = tmp_path / "calls"
    calls.touch()
    ran = subprocess.run(
        ["sh", "-c", script],
        env={"PATH": f"{fakes}:/usr/bin:/bin", "CALLS": str(calls)},
        capture_output=True,
        text=True,
        check=False,
    )
    made = calls.read_text().splitlines()
    if fetched:
        assert ran.returncode == 0, ran.stderr
        assert made[0] == "firewall-cmd --reload"
        assert made[1].startswith("systemctl enable zookeeper.service")
    else:
        assert (ran.returncode, made) == (1, [])
