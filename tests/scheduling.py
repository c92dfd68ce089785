"""The suite's order on xdist's workers: whole modules, the longest first.

`./run.sh test` runs two workers, each taking whole modules (`--dist loadscope`: a
module's VMs and builds run once). xdist hands modules out in the order it is given and
by default first sorts them by their number of tests, which puts the VM modules (a few
tests of many minutes each) last: the run then ends with one worker on a long module
and the other idle. Here the modules go out longest first (LPT, the classic greedy
schedule), and a worker takes its next module only when it is
on its last test, so a short module never waits behind a long one already taken.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from xdist.scheduler import LoadScopeScheduling

# Rough seconds of each long module (set-up included) on two busy cores, from the
# latest runs of each; only their order matters. A module not named here is short
# and keeps its place after these.
MODULE_SECONDS: Mapping[str, float] = {
    "tests/integration/test_cluster_up.py": 1700,
    "tests/integration/test_iso.py": 1250,
    "tests/integration/test_build.py": 550,
    "tests/integration/test_build_role_sets.py": 400,
}


def module_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def longest_first(nodeids: Sequence[str]) -> list[str]:
    """The test ids, modules in order of their seconds (stable: tests keep their order
    in a module, unnamed modules theirs after the named ones)."""
    return sorted(nodeids, key=lambda nodeid: -MODULE_SECONDS.get(module_of(nodeid), 0.0))


class LongestFirstScheduling(LoadScopeScheduling):  # type: ignore[misc]
    """xdist's loadscope on the collection as given (already longest first), taking a
    worker's next module when it has one test left (xdist's own low-water mark is two)."""

    def __init__(self, config: Any, log: Any = None) -> None:
        super().__init__(config, log)
        config.option.loadscopereorder = False

    def _reschedule(self, node: Any) -> None:
        if node.shutting_down:
            return
        if not self.workqueue:
            node.shutdown()
            return
        # A worker runs a test only once it knows the next: one pending test is a
        # worker waiting for its next module.
        if self._pending_of(self.assigned_work[node]) > 1:
            return
        self._assign_work_unit(node)
