"""`cloud-init schema` on a node's first-boot user-data, errors located by line."""

from __future__ import annotations

import contextlib
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

from builder import proc
from builder.config import tls
from builder.config.load import LoadedConfig, SourceFile, format_key
from builder.config.model import Node
from builder.config.secrets import Secrets, generate, load_secrets
from builder.errors import Problem
from builder.firstboot.seed import USER_DATA, node_seed

_SCHEMA_ERROR = re.compile(r", (?=[A-Za-z_][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*: )")
_YAML_MARK = re.compile(r"format-l(\d+)\.c\d+")


def validate_user_data(path: Path, shown: str | None = None) -> list[Problem]:
    """`cloud-init schema` on a user-data file; key paths located by line."""
    shown = shown or str(path)
    result = proc.run(["cloud-init", "schema", "--config-file", str(path)], check=False)
    if result.returncode == 0:
        return []
    text = result.output
    marker = "Cloud config schema errors: "
    if marker not in text:
        return [Problem(shown, None, "", f"cloud-init schema: {text.strip()}")]
    body = text.split(marker, 1)[1].strip()
    yaml_error = _YAML_MARK.match(body)
    if yaml_error:
        first = body.split(": ", 1)[1].splitlines()[0]
        return [Problem(shown, int(yaml_error.group(1)), "", f"cloud-init schema: {first}")]
    source = _user_data_source(path, shown)
    problems = []
    for entry in _SCHEMA_ERROR.split(body.splitlines()[0]):
        key, _, message = entry.partition(": ")
        parts = [int(part) if part.isdigit() else part for part in key.split(".")]
        line = source.line_of(parts) if source else None
        problems.append(Problem(shown, line, format_key(parts), f"cloud-init schema: {message}"))
    return problems


def _user_data_source(path: Path, shown: str) -> SourceFile | None:
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        text = path.read_text(encoding="utf-8")
        return SourceFile(shown, text, YAML(typ="safe", pure=True).load(text))
    except (OSError, YAMLError):
        return None


def validate_seed(loaded: LoadedConfig, node: Node, secrets: Secrets | None) -> list[Problem]:
    """`cloud-init schema` on the node's first-boot user-data, and on its EC2 form that
    fetches the secrets from SSM when the cluster has `ssm_secrets`."""
    variants = [False] + ([True] if loaded.config.cluster.ssm_secrets and secrets else [])
    problems = []
    with tempfile.TemporaryDirectory(prefix="builder-seed-") as scratch:
        for from_ssm in variants:
            seed = node_seed(loaded, node, secrets=secrets, from_ssm=from_ssm)
            name = f"{node.hostname}.user-data" if from_ssm else f"{node.hostname}/{USER_DATA}"
            path = Path(scratch) / name.replace("/", "-")
            path.write_text(seed.user_data, encoding="utf-8")
            problems += validate_user_data(path, f"seed {name}")
    return problems


@contextlib.contextmanager
def secrets_to_validate_with(loaded: LoadedConfig) -> Iterator[tuple[Secrets | None, bool]]:
    """The cluster's secrets; for a secured cluster that has none yet, throwaway values of
    the same shape (the schema checks the seed's form). The flag says which. Either way
    the node certificates a seed carries come from a throwaway CA in a temporary
    directory: validating issues nothing into the config directory."""
    secrets = load_secrets(loaded.directory)
    throwaway = secrets is None and loaded.config.cluster.secured
    if secrets is None and not throwaway:
        yield None, False
        return
    values = generate() if secrets is None else secrets.values
    with tempfile.TemporaryDirectory(prefix="builder-validate-") as scratch:
        yield Secrets(values, tls.write_ca(Path(scratch), tls.make_ca())), throwaway
