"""A wheel carries every package of builder/ (pyproject.toml lists them by name)."""

from __future__ import annotations

import tomllib

from tests.conftest import REPO


def test_every_package_is_in_the_wheel() -> None:
    listed = set(
        tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = {
        ".".join(init.parent.relative_to(REPO).parts)
        for init in (REPO / "builder").rglob("__init__.py")
        if "_shipped" not in init.parts and "__pycache__" not in init.parts
    }
    assert found - listed == set()
