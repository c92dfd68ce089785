"""The accelerator probe against real QEMU (TCG always works here)."""

from __future__ import annotations

import pytest

from builder.image import accel
from tests.conftest import require_tool

pytestmark = pytest.mark.integration


def test_tiny_guest_runs_under_tcg() -> None:
    require_tool("qemu-system-x86_64")
    result = accel.probe("tcg", deadline=60)
    assert result.works, result.detail


def test_a_guest_that_never_exits_fails_at_the_deadline() -> None:
    require_tool("qemu-system-x86_64")
    result = accel.probe("tcg", deadline=3, code=accel.HANG_CODE)
    assert not result.works
    assert result.detail == "the guest did not finish in 3 s"


def test_unknown_accelerator_fails() -> None:
    require_tool("qemu-system-x86_64")
    result = accel.probe("nosuchaccel", deadline=30)
    assert not result.works
    assert "qemu exited with" in result.detail
