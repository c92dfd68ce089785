"""The timestamps builder writes into its manifests: UTC, ISO 8601, whole seconds."""

from __future__ import annotations

import datetime


def utc_now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
