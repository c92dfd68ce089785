"""`builder secrets push`: every node's secret files into SSM Parameter Store.

One SecureString per file, as builder/firstboot/ssm_secrets.py names them;
only the parameters whose value differs are written, and the cluster's
parameters that no node uses any more are deleted. Every call goes through the
publisher's one retry layer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from builder.config.cluster import ClusterFacts
from builder.config.load import LoadedConfig
from builder.firstboot.seed import cluster_secrets
from builder.firstboot.ssm_secrets import cluster_path, node_parameters, settings_of
from builder.publish.aws import Aws, AwsError, Retrier

# Standard parameters hold 4 KB; a keystore is more. Intelligent-Tiering makes those (and
# only those) advanced parameters, which hold 8 KB and are charged for.
TIER = "Intelligent-Tiering"
BATCH = 10  # GetParametersByPath pages and DeleteParameters take ten at most


@dataclass(frozen=True)
class PushReport:
    path: str
    region: str
    written: list[str]
    unchanged: int
    deleted: list[str]


def redacted(text: str, values: Iterable[str]) -> str:
    """An AWS error message without any value we sent (validation errors can quote them)."""
    for value in values:
        text = text.replace(value, "<redacted>")
    return text


def push(loaded: LoadedConfig, aws: Aws) -> PushReport:
    """Every node's secret files as SecureStrings; stale parameters of the cluster deleted."""
    facts = ClusterFacts.of(loaded)
    settings = settings_of(facts)
    secrets = cluster_secrets(loaded)
    if secrets is None:  # a cluster with ssm_secrets is secured: cluster_secrets refused it
        raise AssertionError("ssm_secrets without secrets")
    wanted = {
        p.name: p for node in facts.cluster.nodes for p in node_parameters(facts, node, secrets)
    }
    values = [p.value for p in wanted.values()] + list(secrets.values.values())
    ssm = aws.client("ssm", settings.region)
    retrier = Retrier()
    root = cluster_path(facts)
    try:
        existing = _existing(retrier, ssm, root)
        written = []
        for name, parameter in wanted.items():
            if existing.get(name) == parameter.value:
                continue
            extra: dict[str, Any] = {"KeyId": settings.kms_key} if settings.kms_key else {}
            retrier.call(
                f"PutParameter {name} in {settings.region}",
                ssm.put_parameter,
                Name=name,
                Value=parameter.value,
                Type="SecureString",
                Tier=TIER,
                Overwrite=True,
                Description=f"builder: {parameter.path}, base64",
                **extra,
            )
            written.append(name)
        stale = sorted(set(existing) - set(wanted))
        for start in range(0, len(stale), BATCH):
            retrier.call(
                f"DeleteParameters under {root} in {settings.region}",
                ssm.delete_parameters,
                Names=stale[start : start + BATCH],
            )
    except AwsError as exc:
        raise type(exc)(redacted(str(exc.args[0]), values), exc.code, exc.hint) from None
    return PushReport(root, settings.region, written, len(wanted) - len(written), stale)


def _existing(retrier: Any, ssm: Any, root: str) -> dict[str, str]:
    """The cluster's parameters now, name -> decrypted value."""
    found: dict[str, str] = {}
    token: dict[str, str] = {}
    while True:
        page = retrier.call(
            f"GetParametersByPath {root}",
            ssm.get_parameters_by_path,
            Path=root,
            Recursive=True,
            WithDecryption=True,
            MaxResults=BATCH,
            **token,
        )
        found.update({p["Name"]: p["Value"] for p in page.get("Parameters", [])})
        if not page.get("NextToken"):
            return found
        token = {"NextToken": page["NextToken"]}
