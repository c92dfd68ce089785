"""The verify tests' default cluster is secured, as users get it: the sample secrets beside it."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.config.load import LoadedConfig, load_config


@pytest.fixture
def loaded(secured_copy: Path) -> LoadedConfig:
    return load_config(secured_copy)
