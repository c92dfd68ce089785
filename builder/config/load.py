"""Loading roles-config/ into the model, with file, line and key in every error.

Which directory: `--config DIR`, else `./roles-config` when it exists, else the
embedded default shipped with the package. Every file is parsed and checked
before anything is reported, so one run lists every problem at once.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from builder.config.cluster import masters, quorum
from builder.config.model import MASTER_ROLE, PATTERN_MEANINGS, SLAVE_ROLE, Config
from builder.errors import ConfigError, Problem
from builder.resources import resource_dir

OS_FILE = "os.yaml"
CLUSTER_FILE = "cluster.yaml"
ROLES_DIR = "roles"


def embedded_config_dir() -> Path:
    return resource_dir("roles-config")


def config_dir(explicit: Path | None, cwd: Path | None = None) -> Path:
    """The directory the run reads: explicit, ./roles-config, or the embedded default."""
    if explicit is not None:
        return explicit
    local = (cwd or Path.cwd()) / "roles-config"
    if local.is_dir():
        return local
    return embedded_config_dir()


@dataclass(frozen=True)
class SourceFile:
    """One YAML file: its name as shown to users, its text and its data.

    The data comes from the fast (C) parser; the tree with line marks is
    parsed only when an error needs a line.
    """

    shown: str
    text: str
    data: Any

    @functools.cached_property
    def tree(self) -> Any:
        return YAML(typ="rt", pure=True).load(self.text)

    def line_of(self, path: Sequence[str | int]) -> int | None:
        """The 1-based line of the deepest part of `path` present in the file."""
        node = self.tree
        line = _start_line(node)
        for key in path:
            if isinstance(node, CommentedMap) and key in node:
                line = node.lc.key(key)[0] + 1
                node = node[key]
            elif isinstance(node, CommentedSeq) and isinstance(key, int) and key < len(node):
                line = node.lc.item(key)[0] + 1
                node = node[key]
            else:
                break
        return line


def _start_line(node: Any) -> int | None:
    lc = getattr(node, "lc", None)
    return None if lc is None or lc.line is None else lc.line + 1


@dataclass(frozen=True)
class LoadedConfig:
    """The validated model plus where each part of it came from."""

    config: Config
    directory: Path
    sources: dict[str, SourceFile]
    warnings: tuple[Problem, ...] = ()

    def problem(self, section: str, path: Sequence[str | int], message: str) -> Problem:
        """A Problem located in the file behind `section` (os, cluster or roles.NAME)."""
        source = self.sources[section]
        return Problem(source.shown, source.line_of(path), format_key(path), message)


_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_@/:-][A-Za-z0-9_.@/:-]*$")


def format_key(path: Sequence[str | int]) -> str:
    """nodes[1].ip; a key that is not plain text is shown quoted: files['a b']."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _PLAIN_KEY.match(str(part)):
            text += f".{part}" if text else str(part)
        else:
            text += f"[{str(part)!r}]"
    return text


def _read_yaml(path: Path, shown: str, problems: list[Problem]) -> SourceFile | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        problems.append(Problem(shown, None, "", "file not found"))
        return None
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(Problem(shown, None, "", f"cannot read: {exc}"))
        return None
    try:
        data = YAML(typ="safe").load(text)
    except YAMLError as refused:
        # libyaml's scanner follows YAML 1.1 and refuses some YAML 1.2 (a ':' in
        # a flow sequence's plain scalar): the pure YAML 1.2 parser decides.
        problem_count = len(problems)
        tree = _pure_parse(text, shown, problems)
        if tree is None:
            if len(problems) == problem_count:  # the pure parser saw nothing ("&:")
                problems.append(_syntax_problem(refused, shown))
            return None
        data = _plain(tree)
    if not isinstance(data, dict):
        # libyaml and the pure parser can disagree on such a file ("0\t"): ask the
        # one that locates errors, and report its error when it has one.
        problem_count = len(problems)
        tree = _pure_parse(text, shown, problems)
        if len(problems) == problem_count:
            problems.append(Problem(shown, _start_line(tree), "", "expected a mapping of keys"))
        return None
    return SourceFile(shown, text, data)


def _plain(node: Any) -> Any:
    if isinstance(node, dict):
        return {key: _plain(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_plain(item) for item in node]
    return node


def _pure_parse(text: str, shown: str, problems: list[Problem]) -> Any:
    """The line-keeping YAML 1.2 parser; its errors say where."""
    try:
        return YAML(typ="rt", pure=True).load(text)
    except YAMLError as exc:
        problems.append(_syntax_problem(exc, shown))
    return None


def _syntax_problem(exc: YAMLError, shown: str) -> Problem:
    if isinstance(exc, MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        line = None if mark is None else mark.line + 1
        what = " ".join(str(part) for part in (exc.context, exc.problem) if part)
        return Problem(shown, line, "", f"YAML syntax error: {what}")
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return Problem(shown, None, "", f"YAML error: {first}")


def _message(error: Any) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    if kind == "string_pattern_mismatch":
        pattern = error.get("ctx", {}).get("pattern", "")
        meaning = PATTERN_MEANINGS.get(pattern)
        if meaning:
            return f"{error['input']!r} is not {meaning}"
    message = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return message


def _section_of(loc: Sequence[str | int]) -> tuple[str, tuple[str | int, ...]]:
    """Which file a model error belongs to, and the key path inside that file."""
    head, *rest = loc
    if head == "roles" and rest:
        return f"roles.{rest[0]}", tuple(rest[1:])
    return str(head), tuple(rest)


def _display(directory: Path, relative: str) -> str:
    path = directory / relative
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def load_config(directory: Path) -> LoadedConfig:
    """Parse and check every file under `directory`; raise ConfigError listing every problem."""
    problems: list[Problem] = []
    if not directory.is_dir():
        raise ConfigError([Problem(str(directory), None, "", "config directory not found")])
    sources: dict[str, SourceFile] = {}
    for section, relative in (("os", OS_FILE), ("cluster", CLUSTER_FILE)):
        source = _read_yaml(directory / relative, _display(directory, relative), problems)
        if source is not None:
            sources[section] = source
    role_files = sorted((directory / ROLES_DIR).glob("*.yaml"))
    if not role_files:
        problems.append(
            Problem(_display(directory, ROLES_DIR), None, "", "no role files (roles/*.yaml)")
        )
    for path in role_files:
        source = _read_yaml(path, _display(directory, f"{ROLES_DIR}/{path.name}"), problems)
        if source is not None:
            sources[f"roles.{path.stem}"] = source

    data: dict[str, Any] = {"roles": {}}
    for section, source in sources.items():
        if section.startswith("roles."):
            data["roles"][section.removeprefix("roles.")] = source.data
        else:
            data[section] = source.data

    config: Config | None = None
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            section, key_path = _section_of(error["loc"])
            source = sources.get(section)
            if source is None:
                # A whole file failed to parse: its own problem is already listed.
                continue
            problems.append(
                Problem(
                    source.shown, source.line_of(key_path), format_key(key_path), _message(error)
                )
            )
    if config is None:
        raise ConfigError(problems)
    if problems:
        raise ConfigError(problems)
    loaded = LoadedConfig(config, directory, sources)
    errors, warnings = list(_cluster_problems(loaded)), list(_cluster_warnings(loaded))
    if errors:
        raise ConfigError(errors)
    return LoadedConfig(config, directory, sources, tuple(warnings))


def _cluster_problems(loaded: LoadedConfig) -> Iterator[Problem]:
    cluster = loaded.config.cluster
    roles = loaded.config.roles
    for index, node in enumerate(cluster.nodes):
        for position, role in enumerate(node.roles):
            if role not in roles:
                known = ", ".join(sorted(roles))
                yield loaded.problem(
                    "cluster",
                    ("nodes", index, "roles", position),
                    f"unknown role {role!r} (roles are: {known})",
                )
        if (node.attributes or node.resources) and SLAVE_ROLE not in node.roles:
            yield loaded.problem(
                "cluster",
                ("nodes", index, "attributes" if node.attributes else "resources"),
                f"only a node with the {SLAVE_ROLE!r} role has attributes and resources",
            )
        declared = cluster.networks or (() if cluster.network is None else (cluster.network,))
        if declared and not any(
            ipaddress.IPv4Address(node.ip) in ipaddress.IPv4Network(network) for network in declared
        ):
            yield loaded.problem(
                "cluster",
                ("nodes", index, "ip"),
                f"{node.ip} is outside the cluster's network {', '.join(declared)}",
            )
    for attribute in ("hostname", "ip"):
        counts = Counter(getattr(node, attribute) for node in cluster.nodes)
        for index, node in enumerate(cluster.nodes):
            value = getattr(node, attribute)
            if counts[value] > 1:
                first = next(
                    i for i, n in enumerate(cluster.nodes) if getattr(n, attribute) == value
                )
                if index != first:
                    yield loaded.problem(
                        "cluster",
                        ("nodes", index, attribute),
                        f"duplicate {attribute} {value!r} (also nodes[{first}])",
                    )
    if cluster.network is not None and cluster.networks:
        yield loaded.problem(
            "cluster", ("networks",), "`network` and `networks` name the same thing: use one"
        )
    if not masters(cluster):
        yield loaded.problem(
            "cluster", ("nodes",), f"no node has the {MASTER_ROLE!r} role: the cluster needs one"
        )
    if MASTER_ROLE not in roles:
        yield loaded.problem("os", (), f"there is no roles/{MASTER_ROLE}.yaml")


def _cluster_warnings(loaded: LoadedConfig) -> Iterator[Problem]:
    count = len(masters(loaded.config.cluster))
    if count and count % 2 == 0:
        yield loaded.problem(
            "cluster",
            ("nodes",),
            f"{count} masters: an even count tolerates no more failures than "
            f"{count - 1} (quorum {quorum(count)})",
        )
