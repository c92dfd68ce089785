"""The suite's module order on xdist's workers (tests/scheduling.py)."""

from __future__ import annotations

from tests.conftest import REPO
from tests.scheduling import MODULE_SECONDS, longest_first


def test_long_modules_go_first_and_tests_keep_their_order() -> None:
    ids = [
        "tests/unit/test_a.py::test_one",
        "tests/integration/test_build.py::test_x",
        "tests/integration/test_iso.py::test_b",
        "tests/unit/test_a.py::test_two",
        "tests/integration/test_iso.py::test_a",
    ]
    assert longest_first(ids) == [
        "tests/integration/test_iso.py::test_b",
        "tests/integration/test_iso.py::test_a",
        "tests/integration/test_build.py::test_x",
        "tests/unit/test_a.py::test_one",
        "tests/unit/test_a.py::test_two",
    ]


def test_every_module_named_exists() -> None:
    """A renamed module would silently lose its place."""
    assert [module for module in MODULE_SECONDS if not (REPO / module).is_file()] == []
