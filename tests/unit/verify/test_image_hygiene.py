"""The image layer's cloud-init hygiene check on real directories, without a VM.

The booted-node case (state cloud-init itself wrote) is in
tests/integration/test_cluster_up.py; here each kind of state is laid out by hand
under a stand-in root, and the spec's own shell command runs against it.
"""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from builder.verify.specs import test_image as image_specs


@dataclass
class Result:
    stdout: str
    rc: int


@dataclass
class RootedHost:
    """A testinfra-like host whose absolute path arguments live under `root`."""

    root: Path

    def run(self, command: str, *args: str) -> Result:
        rooted = [f"{self.root}{arg}" if arg.startswith("/") else arg for arg in args]
        script = command % tuple(shlex.quote(arg) for arg in rooted)
        done = subprocess.run(
            ["sh", "-c", script], capture_output=True, text=True, check=False, timeout=30
        )
        return Result(done.stdout, done.returncode)


def _found(root: Path) -> object:
    seen = []

    def check(what: str, expected: object, found: object) -> None:
        seen.append((what, expected, found))

    image_specs.test_no_cloud_init_instance_state(RootedHost(root), check)
    [(what, expected, found)] = seen
    assert (what, expected) == ("cloud-init state in /var/lib/cloud", [])
    return found


def test_a_fresh_image_passes(tmp_path: Path) -> None:
    assert _found(tmp_path) == []  # no /var/lib/cloud at all
    state = tmp_path / image_specs.CLOUD_STATE.lstrip("/")
    (state / "instances").mkdir(parents=True)
    (state / "sem").mkdir()
    (state / "data").mkdir()  # what cloud-init keeps of the last run, reused by nothing
    (state / "data" / "previous-instance-id").write_text("gone\n")
    assert _found(tmp_path) == []


@pytest.mark.parametrize(
    ("layout", "found"),
    [
        ({"instances/test167-0a1b/sem/config_runcmd": "x"}, ["instances/test167-0a1b"]),
        ({"instances/.hidden": "x"}, ["instances/.hidden"]),
        ({"sem/config_scripts_per_once.once": "x"}, ["sem/config_scripts_per_once.once"]),
        ({"instance": "instances/test167-0a1b"}, ["instance"]),  # a link, even dangling
    ],
    ids=["cached-instance", "hidden-entry", "per-once-semaphore", "dangling-link"],
)
def test_state_cloud_init_would_reuse_fails(
    tmp_path: Path, layout: dict[str, str], found: list[str]
) -> None:
    state = tmp_path / image_specs.CLOUD_STATE.lstrip("/")
    for relative, content in layout.items():
        path = state / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if relative == "instance":
            path.symlink_to(content)
        else:
            path.write_text(content)
    assert _found(tmp_path) == found
