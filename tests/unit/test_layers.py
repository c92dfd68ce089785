"""The layering of builder/: no module imports from a later stage, or from a sibling stage.

common < config < render < firstboot < mirror < installer < image < publish < verify < cli/doctor.
The common modules (errors, proc, ssh_master, fsutil, clock, progress, resources, the package's
__init__) import no stage package. Every import counts: at module level, inside a
function, under `if TYPE_CHECKING:`, relative or absolute.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import REPO

PACKAGE = "builder"
# The stage packages in pipeline order; a stage may import the ones before it.
STAGES = (
    "config",
    "render",
    "firstboot",
    "mirror",
    "installer",
    "image",
    "publish",
    "verify",
    "cluster",
)
# The common modules: any layer may import them; they import no stage package.
COMMON = frozenset({"errors", "proc", "ssh_master", "fsutil", "clock", "progress", "resources"})
# The top: the command line and what only it uses. They may import everything.
TOP = frozenset({"cli", "doctor", "__main__"})
COMMON_RANK = 0
TOP_RANK = len(STAGES) + 1

# Today's upward imports on main, (importer, imported) -> why it is still there; the
# lead empties this once the branches of issue 15 that remove them are merged. An
# entry that no longer occurs fails the test, so the list only shrinks. Empty: main
# at d6bf3bd has none (image/build.py carries verify's in-build code, but written
# there, not imported: no import rule can see that).
KNOWN_VIOLATIONS: dict[tuple[str, str], str] = {}


@dataclass(frozen=True, order=True)
class Violation:
    importer: str
    line: int
    imported: str

    def __str__(self) -> str:
        return (
            f"{self.importer}:{self.line}: {_layer_name(self.importer)} imports "
            f"{self.imported} ({_layer_name(self.imported)})"
        )


def rank(module: str) -> int:
    """A builder module's layer: 0 common, 1.. the stages in order, the top last."""
    parts = module.split(".")
    if parts[0] != PACKAGE or len(parts) == 1:
        return COMMON_RANK
    if parts[1] in STAGES:
        return STAGES.index(parts[1]) + 1
    return TOP_RANK if parts[1] in TOP else COMMON_RANK


def _layer_name(module: str) -> str:
    layer = rank(module)
    if layer == COMMON_RANK:
        return "common"
    return "top" if layer == TOP_RANK else STAGES[layer - 1]


def imports_of(source: str, module: str, is_package: bool) -> Iterator[tuple[int, str]]:
    """(line, imported module) for every builder import anywhere in the source.

    `from builder.x import y` yields builder.x.y: y may be a module of builder.x, and
    an attribute of builder.x ranks as builder.x does.
    """
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}" if alias.name != "*" else base


def violations(modules: Mapping[str, tuple[str, bool]]) -> list[Violation]:
    """Imports against the layering. `modules`: module name -> (source, is a package)."""
    found = set()
    for module, (source, is_package) in modules.items():
        for line, imported in imports_of(source, module, is_package):
            if imported.split(".")[0] != PACKAGE:
                continue
            if rank(imported) > rank(module):
                found.add(Violation(module, line, imported))
    return sorted(found)


def builder_modules(root: Path = REPO / PACKAGE) -> dict[str, tuple[str, bool]]:
    modules = {}
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root.parent).with_suffix("")
        is_package = relative.name == "__init__"
        parts = relative.parts[:-1] if is_package else relative.parts
        modules[".".join(parts)] = (path.read_text(), is_package)
    return modules


def test_no_module_imports_upward_or_sideways() -> None:
    found = violations(builder_modules())
    known = {(v.importer, v.imported) for v in found} & KNOWN_VIOLATIONS.keys()
    new = [str(v) for v in found if (v.importer, v.imported) not in known]
    assert new == [], "\n".join(new)
    gone = sorted(KNOWN_VIOLATIONS.keys() - known)
    assert gone == [], f"fixed: remove from KNOWN_VIOLATIONS: {gone}"


def test_every_module_is_placed() -> None:
    """A new top-level module or package must be put in a layer on purpose."""
    names = {module.split(".")[1] for module in builder_modules() if "." in module}
    assert names - COMMON - TOP - set(STAGES) == set()


def test_the_checker_finds_every_kind_of_bad_import() -> None:
    config_model = """
from __future__ import annotations
from typing import TYPE_CHECKING
import builder.errors
from builder import fsutil
from . import load
if TYPE_CHECKING:
    from builder.render.role import render_role

def later():
    import builder.image.build
    from ..verify import contract
    from builder import cli
"""
    modules = {
        "builder.config.model": (config_model, False),
        "builder.proc": ("from builder.config.model import Config\n", False),
        "builder.image": ("from .build import build_all\nfrom . import accel\n", True),
        "builder.render.role": ("from builder.firstboot.seed import node_seed\n", False),
        "builder.cli": ("from builder.publish import aws\n", False),
    }
    assert [str(v) for v in violations(modules)] == [
        "builder.config.model:8: config imports builder.render.role.render_role (render)",
        "builder.config.model:11: config imports builder.image.build (image)",
        "builder.config.model:12: config imports builder.verify.contract (verify)",
        "builder.config.model:13: config imports builder.cli (top)",
        "builder.proc:1: common imports builder.config.model.Config (config)",
        "builder.render.role:1: render imports builder.firstboot.seed.node_seed (firstboot)",
    ]
