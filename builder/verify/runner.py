"""`builder verify`: the shipped image specs (builder/specs/) against a live host.

The specs run under pytest, in this process, with testinfra's backends (any
host spec testinfra accepts: `ssh://USER@HOST[:PORT]`, `local://`, ...); the
expected values are the contract computed from the config (builder/contract.py).
One SSH connection is shared by every check (an OpenSSH ControlMaster): a
user's run opens and closes its own; inside `builder build --verify` the
master is opened over the build key before `provision.sh seal` removes that
key, and the image layer runs over it afterwards (see builder/build.py).
`--cluster` checks several nodes at once, each in a forked process of its own.

Exit codes: 0 every spec passed; 1 a spec failed; 2 bad input (unknown role
or node, a host that cannot be reached).
"""

from __future__ import annotations

import functools
import multiprocessing
import shutil
import tempfile
import urllib.parse
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from builder.config.cluster import ClusterFacts, fqdn
from builder.config.load import LoadedConfig
from builder.config.model import Node
from builder.config.roles import compose, node_roles, parse_role_names
from builder.errors import UserError
from builder.ssh_master import CONTROL_PERSIST, exit_master
from builder.verify.contract import Layer, image_contract, node_contract
from builder.verify.specs.plugin import Outcome, SpecPlugin

SPECS = Path(__file__).resolve().parent / "specs"
IMAGE_SPECS = ("test_image.py",)
NODE_SPECS = {"": "test_node.py", "master": "test_node_master.py", "slave": "test_node_slave.py"}
SSH_SCHEMES = ("ssh", "safe-ssh", "paramiko")
# Inside a build the master must outlive `provision.sh seal` between two steps.
BUILD_CONTROL_PERSIST = 600
VALUE_WIDTH = 60


@dataclass(frozen=True)
class Connection:
    """How to reach the host: a testinfra host spec and the SSH options around it."""

    spec: str
    identity: Path | None = None
    ssh_config: Path | None = None
    control_path: Path | None = None  # a shared master; None: a private one per run

    @property
    def user(self) -> str | None:
        return urllib.parse.urlparse(self.spec).username

    @property
    def is_ssh(self) -> bool:
        return urllib.parse.urlparse(self.spec).scheme in SSH_SCHEMES


@dataclass
class Report:
    """One host's results, in spec order."""

    target: str
    layers: tuple[Layer, ...]
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def failed(self) -> list[Outcome]:
        return [outcome for outcome in self.outcomes if not outcome.passed]

    @property
    def ok(self) -> bool:
        return bool(self.outcomes) and not self.failed


def check_host_spec(spec: str) -> str:
    parsed = urllib.parse.urlparse(spec)
    if "://" not in spec or not parsed.scheme:
        raise UserError(
            f"--host {spec!r}: not a host spec",
            hint="write it as testinfra does: ssh://USER@HOST[:PORT] or local://",
        )
    if parsed.scheme in SSH_SCHEMES and not parsed.hostname:
        raise UserError(f"--host {spec!r}: no host name")
    return spec


@contextmanager
def connected(connection: Connection, persist: int = CONTROL_PERSIST) -> Iterator[Any]:
    """A testinfra Host; over SSH one master connection carries every check."""
    import testinfra

    private = None
    control = connection.control_path
    if connection.is_ssh and control is None:
        private = Path(tempfile.mkdtemp(prefix="builder-verify-"))
        control = private / "ssh.sock"
    options: dict[str, Any] = {}
    if connection.is_ssh:
        options = {
            "connection": urllib.parse.urlparse(connection.spec).scheme,
            "controlpath": str(control),
            "controlpersist": persist,
            "timeout": 30,
        }
        if connection.identity:
            options["ssh_identity_file"] = str(connection.identity)
        if connection.ssh_config:
            options["ssh_config"] = str(connection.ssh_config)
        if connection.user not in (None, "root") and "sudo=" not in connection.spec:
            options["sudo"] = True
    host = testinfra.get_host(connection.spec, **options)
    try:
        try:
            host.run("true")
        except RuntimeError as exc:
            raise UserError(
                f"cannot reach {connection.spec} over SSH: {_ssh_error(exc)}",
                hint="check the address, the user and --ssh-identity",
            ) from None
        yield host
    finally:
        if private is not None:
            close_master(connection, control)
            shutil.rmtree(private, ignore_errors=True)


def _ssh_error(exc: RuntimeError) -> str:
    result = exc.args[0] if exc.args else exc
    stderr = getattr(result, "stderr", "") or str(result)
    lines = [line for line in str(stderr).splitlines() if line.strip()]
    return lines[-1].strip() if lines else "ssh failed"


def close_master(connection: Connection, control: Path | None) -> None:
    """Ask the SSH master at `control` to exit (nothing when there is none)."""
    if control is None:
        return
    host = urllib.parse.urlparse(connection.spec).hostname or "host"
    exit_master(control, host, connection.ssh_config)


def spec_files(layers: Sequence[Layer], roles: Sequence[str]) -> list[Path]:
    names: list[str] = []
    if Layer.IMAGE in layers:
        names += IMAGE_SPECS
    if Layer.NODE in layers:
        names += [NODE_SPECS[""]] + [NODE_SPECS[role] for role in roles if role in NODE_SPECS]
    return [SPECS / name for name in names]


def run_specs(
    host: Any, plugin_args: dict[str, Any], files: Sequence[Path], junit: Path | None
) -> list[Outcome]:
    """pytest on the shipped specs, with their own settings, printing nothing itself."""
    import pytest

    plugin = SpecPlugin(host, **plugin_args)
    args = [
        *map(str, files),
        "-c",
        str(SPECS / "pytest.ini"),
        "--rootdir",
        str(SPECS),
        "--confcutdir",
        str(SPECS),
        "--import-mode=importlib",
        "-p",
        "no:terminal",
        "-W",
        "ignore::pytest.PytestAssertRewriteWarning",
    ]
    if junit is not None:
        args += ["--junit-xml", str(junit)]
    code = pytest.main(args, plugins=[plugin])
    if code not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
        raise RuntimeError(f"the specs did not run (pytest exit code {code})")
    return plugin.outcomes


def verify_host(
    loaded: LoadedConfig,
    role_text: str,
    connection: Connection,
    layers: Sequence[Layer],
    node_name: str | None,
    junit: Path | None,
) -> Report:
    """One host against the role set's contract, in the layers asked for."""
    roles = compose(loaded, parse_role_names(role_text, loaded))
    node = None
    if Layer.NODE in layers:
        node = find_node(loaded, connection.spec, node_name)
        if node_roles(loaded, node).names != roles.names:
            raise UserError(
                f"node {node.hostname} has the roles {','.join(node.roles)}, not {roles.label}"
            )
    report = Report(connection.spec, tuple(layers))
    plugin_args = {
        "image": image_contract(loaded, roles) if Layer.IMAGE in layers else None,
        "node": node_contract(loaded, node, ClusterFacts.of(loaded)) if node else None,
    }
    persist = BUILD_CONTROL_PERSIST if connection.control_path else CONTROL_PERSIST
    with connected(connection, persist) as host:
        report.outcomes = run_specs(host, plugin_args, spec_files(layers, roles.names), junit)
    close_master(connection, connection.control_path)
    return report


def open_build_connection(connection: Connection) -> None:
    """Inside a build, before seal: open the master that the image layer reuses after it."""
    with connected(connection, BUILD_CONTROL_PERSIST):
        pass


def find_node(loaded: LoadedConfig, spec: str, name: str | None) -> Node:
    cluster = loaded.config.cluster
    if name is not None:
        for node in cluster.nodes:
            if node.hostname == name.lower():
                return node
        known = ", ".join(node.hostname for node in cluster.nodes)
        raise UserError(f"--node {name!r}: no such node in the cluster ({known})")
    address = urllib.parse.urlparse(spec).hostname or ""
    for node in cluster.nodes:
        if address in (node.hostname, node.ip, fqdn(cluster, node)):
            return node
    raise UserError(
        f"cannot tell which node of the cluster {spec} is",
        hint="name it with --node HOSTNAME",
    )


# `verify --cluster` checks this many nodes at once, each in a process of its own (the
# specs run under pytest, which is one run per process).
CLUSTER_WORKERS = 8


def verify_cluster(
    loaded: LoadedConfig,
    user: str,
    identity: Path | None,
    ssh_config: Path | None,
    junit: Path | None,
) -> list[tuple[Node, Report | str]]:
    """Every node of the inventory, node layer, several at once; a node that cannot be
    reached is a row too. Rows come in the inventory's order."""
    nodes = list(loaded.config.cluster.nodes)
    check = functools.partial(_verify_node, loaded, user, identity, ssh_config, junit)
    if len(nodes) == 1:
        return [(nodes[0], check(nodes[0]))]
    # fork: each child starts from this process as it is (config loaded, nothing run yet)
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(min(CLUSTER_WORKERS, len(nodes)), mp_context=context) as pool:
        return list(zip(nodes, pool.map(check, nodes), strict=True))


def _verify_node(
    loaded: LoadedConfig,
    user: str,
    identity: Path | None,
    ssh_config: Path | None,
    junit: Path | None,
    node: Node,
) -> Report | str:
    """One node of `verify --cluster`: its report, or why it could not be reached."""
    connection = Connection(f"ssh://{user}@{node.ip}", identity, ssh_config)
    contract = node_contract(loaded, node, ClusterFacts.of(loaded), every_agent=True)
    report = Report(connection.spec, (Layer.NODE,))
    node_junit = junit.with_name(f"{junit.stem}-{node.hostname}{junit.suffix}") if junit else None
    try:
        with connected(connection) as host:
            report.outcomes = run_specs(
                host,
                {"image": None, "node": contract},
                spec_files((Layer.NODE,), node_roles(loaded, node).names),
                node_junit,
            )
    except UserError as exc:
        return exc.message
    return report


def _shown(value: object) -> str:
    text = value if isinstance(value, str) and value and "\n" not in value else repr(value)
    return text if len(text) <= VALUE_WIDTH else text[: VALUE_WIDTH - 3] + "..."


def report_lines(report: Report) -> list[str]:
    """Each check: PASS/FAIL, what, expected, found; then a count."""
    lines = [f"{report.target} ({', '.join(layer.value for layer in report.layers)} layer)"]
    checks = 0
    for outcome in report.outcomes:
        if not outcome.observations:
            checks += 1
            lines.append(f"FAIL  {outcome.nodeid.split('::')[-1]}")
            lines.append(f"        error: {outcome.error}")
            continue
        for seen in outcome.observations:
            checks += 1
            lines.append(f"{'PASS' if seen.passed else 'FAIL'}  {seen.what}")
            lines.append(f"        expected: {_shown(seen.expected)}")
            lines.append(f"        found:    {_shown(seen.found)}")
    failed = sum(1 for o in report.outcomes for s in o.observations if not s.passed) + sum(
        1 for o in report.outcomes if not o.observations and not o.passed
    )
    lines.append(f"{checks} checks: {checks - failed} passed, {failed} failed")
    return lines


def cluster_lines(rows: list[tuple[Node, Report | str]]) -> list[str]:
    """One table: node, roles, checks passed, the first failure."""
    table = [("NODE", "ROLES", "PASSED", "FIRST FAILURE")]
    for node, result in rows:
        if isinstance(result, str):
            table.append((node.hostname, ",".join(node.roles), "-", f"unreachable: {result}"))
            continue
        seen = [s for o in result.outcomes for s in o.observations]
        passed = sum(1 for s in seen if s.passed)
        first = next(
            (
                f"{s.what}: expected {_shown(s.expected)}, found {_shown(s.found)}"
                for s in seen
                if not s.passed
            ),
            next((o.error for o in result.failed if not o.observations), ""),
        )
        table.append((node.hostname, ",".join(node.roles), f"{passed}/{len(seen)}", first))
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    return [
        f"{row[0]:{widths[0]}}  {row[1]:{widths[1]}}  {row[2]:{widths[2]}}  {row[3]}".rstrip()
        for row in table
    ]


def cluster_ok(rows: list[tuple[Node, Report | str]]) -> bool:
    return all(isinstance(result, Report) and result.ok for _, result in rows)
