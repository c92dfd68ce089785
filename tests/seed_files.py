"""What a seed's user-data writes on the node, decoded as cloud-init decodes it."""

from __future__ import annotations

import base64
import gzip
from typing import Any

from ruamel.yaml import YAML


def user_data_document(data: bytes) -> dict[str, Any]:
    """The cloud-config of a user-data file (EC2's may be gzip-compressed)."""
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    document: dict[str, Any] = YAML(typ="safe").load(data.decode())
    return document


def written_files(document: dict[str, Any]) -> dict[str, tuple[bytes, str]]:
    """path -> (content, permissions) of every write_files entry."""
    files = {}
    for entry in document.get("write_files", []):
        content = entry["content"]
        encoding = entry.get("encoding")
        if encoding == "gz+b64":
            data = gzip.decompress(base64.b64decode(content))
        elif encoding == "b64":
            data = base64.b64decode(content)
        elif encoding is None:
            data = content.encode()
        else:
            raise ValueError(f"{entry['path']}: encoding {encoding!r}")
        files[entry["path"]] = (data, entry["permissions"])
    return files
