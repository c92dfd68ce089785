"""Secrets from SSM Parameter Store for EC2 nodes (cluster.yaml `ssm_secrets`).

EC2 user-data is readable by any process on the instance, so an EC2 seed of a
cluster with `ssm_secrets` carries no secret. Each of the node's secret files
(what `secret_files` gives an embedding seed, byte for byte) is one SecureString
parameter, `PREFIX/CLUSTER/HOSTNAME/PATH`, its content base64-encoded; the seed
carries `fetch_secrets.py` and a manifest of paths, parameters and digests, and
runs it before any service starts. `builder secrets push` (builder/publish/
secrets.py) writes the parameters.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builder.config.cluster import SHARED_TLS_MODE, ClusterFacts
from builder.config.model import Node, SsmSecrets
from builder.config.secrets import Secrets
from builder.errors import UserError

FETCHER = "/usr/local/sbin/builder-fetch-secrets"
MANIFEST = "/etc/builder/ssm-secrets.json"
FETCHER_SOURCE = Path(__file__).with_name("fetch_secrets.py")
# runcmd's first line. cloud-init runs runcmd as one shell script without `set -e` and
# copies a string item verbatim: a failed fetch ends the script there, before the
# firewall's reload and before any service is enabled or started (the image keeps SSH
# only, and the stack's units are not enabled in the image): the node fails closed.
FETCH_OR_STOP = f"{FETCHER} {MANIFEST} || exit 1"
LARGEST_VALUE = 8192  # an advanced parameter's limit


@dataclass(frozen=True)
class SecretParameter:
    name: str
    path: str
    value: str  # the file's bytes, base64
    sha256: str  # of the file's bytes: the manifest's check
    mode: str = "0600"  # the file's on the node (an executors' key: 0644)


def settings_of(facts: ClusterFacts) -> SsmSecrets:
    settings = facts.cluster.ssm_secrets
    if settings is None:
        raise UserError(
            "cluster.yaml has no ssm_secrets",
            hint="ssm_secrets: {region: eu-west-1} puts EC2 nodes' secrets in SSM Parameter Store",
        )
    return settings


def cluster_path(facts: ClusterFacts) -> str:
    """Where the cluster's parameters live: PREFIX/CLUSTER."""
    return f"{settings_of(facts).prefix}/{facts.cluster.name}"


def node_path(facts: ClusterFacts, node: Node) -> str:
    """Where one node's parameters live: what its instance role may read."""
    return f"{cluster_path(facts)}/{node.hostname}"


def partition(region: str) -> str:
    """The ARN partition of a region: aws, aws-cn (China), aws-us-gov (GovCloud)."""
    if region.startswith("cn-"):
        return "aws-cn"
    return "aws-us-gov" if region.startswith("us-gov-") else "aws"


def ssm_host(region: str) -> str:
    """SSM's host in a region (kms:ViaService names it too)."""
    suffix = "amazonaws.com.cn" if partition(region) == "aws-cn" else "amazonaws.com"
    return f"ssm.{region}.{suffix}"


def endpoint(region: str) -> str:
    return f"https://{ssm_host(region)}"


def node_parameters(
    facts: ClusterFacts, node: Node, secrets: Secrets, *, issue: bool = True
) -> list[SecretParameter]:
    """One parameter per secret file of the node, in `secret_files`' order, then one per
    private key every user of the node reads (`ssm_shared_files`)."""
    # imported here: seed.py imports this module to build the SSM form of a seed
    from builder.firstboot.seed import SECRET_PERMISSIONS, secret_files, ssm_shared_files

    files = [
        (path, content, SECRET_PERMISSIONS)
        for path, content in secret_files(facts, node, secrets, issue=issue).items()
    ]
    shared = ssm_shared_files(facts, node, secrets, issue=issue)
    files += [(path, content, f"{SHARED_TLS_MODE:04o}") for path, content in shared.items()]
    parameters = []
    for path, content, mode in files:
        data = content if isinstance(content, bytes) else content.encode()
        value = base64.b64encode(data).decode()
        if len(value) > LARGEST_VALUE:
            raise UserError(f"{node.hostname}: {path} is over SSM's {LARGEST_VALUE} characters")
        name = f"{node_path(facts, node)}{path}"
        digest = hashlib.sha256(data).hexdigest()
        parameters.append(SecretParameter(name, path, value, digest, mode))
    return parameters


def manifest(facts: ClusterFacts, node: Node, secrets: Secrets) -> str:
    """What fetch_secrets.py reads: the region, and per file its path, parameter, digest
    and mode."""
    region = settings_of(facts).region
    files = [
        {"path": p.path, "parameter": p.name, "sha256": p.sha256, "mode": p.mode}
        for p in node_parameters(facts, node, secrets)
    ]
    document = {"region": region, "endpoint": endpoint(region), "files": files}
    return json.dumps(document, indent=1) + "\n"


def fetcher_source() -> str:
    return FETCHER_SOURCE.read_text(encoding="utf-8")


def parameter_arn(region: str, account: str, name: str) -> str:
    """A parameter's (or a path's) ARN: the name's leading / is the one after `parameter`."""
    return f"arn:{partition(region)}:ssm:{region}:{account}:parameter{name}"


def _kms_statement(settings: SsmSecrets, account: str, actions: list[str]) -> dict[str, Any]:
    """The cluster's own key, used only through SSM in its region. A key given by alias or
    id is matched as any key of the account (IAM does not match aliases in Resource)."""
    key = settings.kms_key or ""
    region = settings.region
    return {
        "Effect": "Allow",
        "Action": actions,
        "Resource": key
        if key.startswith("arn:")
        else f"arn:{partition(region)}:kms:{region}:{account}:key/*",
        "Condition": {"StringEquals": {"kms:ViaService": ssm_host(region)}},
    }


def _policy(statements: list[dict[str, Any]]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": statements}


def iam_policy(facts: ClusterFacts, node: Node, account: str = "*") -> dict[str, Any]:
    """The node's instance role's policy: GetParameters on its own parameters only (and
    kms:Decrypt through SSM when the cluster names its own key). One role per node: the
    policy names one node's path."""
    settings = settings_of(facts)
    resource = parameter_arn(settings.region, account, f"{node_path(facts, node)}/*")
    statements = [{"Effect": "Allow", "Action": "ssm:GetParameters", "Resource": resource}]
    if settings.kms_key is not None:
        statements.append(_kms_statement(settings, account, ["kms:Decrypt"]))
    return _policy(statements)


def push_policy(facts: ClusterFacts, account: str = "*") -> dict[str, Any]:
    """What `builder secrets push` needs: to read the cluster's path (GetParametersByPath
    is authorized on the path itself) and to write and delete under it."""
    settings = settings_of(facts)
    root = cluster_path(facts)
    statements: list[dict[str, Any]] = [
        {
            "Effect": "Allow",
            "Action": "ssm:GetParametersByPath",
            "Resource": [
                parameter_arn(settings.region, account, root),
                parameter_arn(settings.region, account, f"{root}/*"),
            ],
        },
        {
            "Effect": "Allow",
            "Action": ["ssm:PutParameter", "ssm:DeleteParameters"],
            "Resource": parameter_arn(settings.region, account, f"{root}/*"),
        },
    ]
    if settings.kms_key is not None:
        actions = ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"]
        statements.append(_kms_statement(settings, account, actions))
    return _policy(statements)
