"""`builder verify` without a VM: the contract from the config, bad input, a real local run.

The specs against live SSH hosts (positive and negative) are in
tests/integration/test_cluster_up.py and test_build.py.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from builder.config.cluster import ClusterFacts
from builder.config.load import LoadedConfig, load_config
from builder.config.model import Node
from builder.config.roles import compose
from builder.render.provision import role_files
from builder.verify import runner
from builder.verify.contract import Layer, image_contract, node_contract
from builder.verify.in_build import spec_failures
from builder.verify.runner import SPECS, Report, report_lines, spec_files
from builder.verify.specs.plugin import Observation, Outcome
from tests.conftest import REPO, CliRun


def test_image_contract_is_the_rendered_config(loaded: LoadedConfig) -> None:
    slave = compose(loaded, ("slave",))
    contract = image_contract(loaded, slave)
    files = {spec.path: spec.content for spec in contract.files}
    for spec in role_files(slave):
        assert files[spec.path] == spec.content
    assert files["/etc/builder/roles"] == "slave\n"
    assert [p.name for p in contract.packages] == list(loaded.config.roles["slave"].packages)
    states = {unit.unit: unit.state for unit in contract.units}
    assert states == {
        unit: ("disabled" if unit in slave.services else "masked")
        for unit in loaded.config.os.stack_units
    }
    assert contract.firewall_services == ("dhcpv6-client", "ssh")
    assert contract.selinux == loaded.config.os.selinux


def test_a_config_change_changes_the_contract(config_copy: Path) -> None:
    slave = config_copy / "roles" / "slave.yaml"
    slave.write_text(slave.read_text().replace('content: "5mins\\n"', 'content: "10mins\\n"'))
    os_yaml = config_copy / "os.yaml"
    os_yaml.write_text(os_yaml.read_text().replace("selinux: enforcing", "selinux: permissive"))
    loaded = load_config(config_copy)
    contract = image_contract(loaded, compose(loaded, ("slave",)))
    files = {spec.path: spec.content for spec in contract.files}
    assert files["/etc/mesos-slave/executor_registration_timeout"] == "10mins\n"
    assert contract.selinux == "permissive"


def test_node_contract_is_the_seed(loaded: LoadedConfig) -> None:
    facts = ClusterFacts.of(loaded)
    [test166, test167] = loaded.config.cluster.nodes
    master = node_contract(loaded, test166, facts)
    assert dict(master.files)["/etc/chronos/conf/master"] == facts.zk_url + "\n"
    # its zk URL holds a password: a root-only file, which /etc/mesos/zk names
    assert "/etc/builder/credentials/mesos-zk.url" in {f.path for f in master.secret_files}
    assert dict(master.files)["/etc/mesos/zk"] == "file:///etc/builder/credentials/mesos-zk.url\n"
    assert master.services == facts.services[("master", "slave")]
    assert dict(master.listening) == {
        "zookeeper": 2181,
        "mesos-master": 5050,
        "marathon": 8443,  # HTTPS: a secured cluster's
        "chronos": 4443,
        "mesos-slave": 5051,
    }
    assert master.master is not None
    assert master.master.agents == ("test166", "test167")
    slave = node_contract(loaded, test167, facts)
    assert slave.master is None
    assert master.slave_zk_url == "zk://<redacted>@test166:2181/mesos"
    assert slave.slave_zk_url == "zk://test166:2181/mesos"  # an agent alone's is plain
    assert dict(slave.files)["/etc/mesos/zk"] == facts.zk_url + "\n"
    assert dict(slave.listening) == {"mesos-slave": 5051}
    assert "zookeeper" in slave.idle_units


def test_spec_files_per_layer_and_role() -> None:
    assert [p.name for p in spec_files([Layer.IMAGE], ("master", "slave"))] == ["test_image.py"]
    assert [p.name for p in spec_files([Layer.NODE], ("slave",))] == [
        "test_node.py",
        "test_node_slave.py",
    ]
    assert all(path.is_file() for path in spec_files(list(Layer), ("master", "slave")))


def test_the_specs_ship_in_the_package() -> None:
    """A wheel carries builder.verify.specs (its test modules and its pytest.ini)."""
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "builder.verify.specs" in setuptools["packages"]
    assert setuptools["package-data"]["builder.verify.specs"] == ["pytest.ini"]
    shipped = {p.name for p in SPECS.iterdir() if p.name != "__pycache__"}
    assert {name for name in shipped if not name.endswith(".py")} == {"pytest.ini"}


def test_report_lines_show_expected_and_found() -> None:
    report = Report("ssh://centos@node", (Layer.IMAGE,))
    report.outcomes = [
        Outcome("a", True, [Observation("SELinux mode", "enforcing", "enforcing", True)]),
        Outcome("b", False, [Observation("/etc/x content", "a\n", "b\n", False)]),
        Outcome("c", False, [], "RuntimeError: boom"),
    ]
    assert report_lines(report) == [
        "ssh://centos@node (image layer)",
        "PASS  SELinux mode",
        "        expected: enforcing",
        "        found:    enforcing",
        "FAIL  /etc/x content",
        "        expected: 'a\\n'",
        "        found:    'b\\n'",
        "FAIL  c",
        "        error: RuntimeError: boom",
        "3 checks: 1 passed, 2 failed",
    ]


def test_spec_failures_read_from_junit(tmp_path: Path) -> None:
    report = tmp_path / "verify.xml"
    report.write_text(
        '<testsuites><testsuite><testcase name="a"/>'
        '<testcase name="b"><failure message="Failed: x: expected 1, found 2">t</failure>'
        "</testcase></testsuite></testsuites>"
    )
    assert spec_failures(report) == ["FAIL x: expected 1, found 2"]
    assert spec_failures(tmp_path / "none.xml") == []


def test_local_image_layer_fails_on_a_machine_that_is_no_image(
    builder_cli: CliRun, tmp_path: Path
) -> None:
    """The real specs, testinfra's local backend: this test machine is no slave image."""
    junit = tmp_path / "verify.xml"
    result = builder_cli(
        "verify", "slave", "--host", "local://", "--layer", "image", "--junit-xml", str(junit)
    )
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "local:// (image layer)"
    assert "FAIL  /etc/mesos-slave/containerizers content" in lines
    assert "        expected: 'docker,mesos\\n'" in lines
    assert lines[-1].endswith("failed")
    assert " 0 failed" not in lines[-1]
    suite = ET.parse(junit).getroot().find("testsuite")  # noqa: S314 - our own report
    assert suite is not None
    assert int(suite.get("failures", "0")) > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["verify", "slave"], "error: name a ROLE and a --host (or use --cluster)"),
        (
            ["verify", "slave", "--host", "centos@node"],
            "error: --host 'centos@node': not a host spec",
        ),
        (["verify", "nosuch", "--host", "local://"], "error: ROLE: unknown role 'nosuch'"),
        (["verify", "slave", "--cluster"], "error: --cluster takes no ROLE and no --host"),
        (
            ["verify", "slave", "--host", "ssh://centos@10.0.0.9", "--layer", "node"],
            "error: cannot tell which node of the cluster ssh://centos@10.0.0.9 is",
        ),
        (
            ["verify", "slave", "--host", "ssh://centos@x", "--node", "nosuch"],
            "error: --node 'nosuch': no such node in the cluster (test166, test167)",
        ),
        (
            ["verify", "master", "--host", "ssh://centos@10.86.255.167"],
            "error: node test167 has the roles slave, not master",
        ),
    ],
)
def test_bad_input(builder_cli: CliRun, args: list[str], message: str) -> None:
    result = builder_cli(*args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.splitlines()[0].startswith(message), result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_host_is_bad_input(
    builder_cli: CliRun, tmp_path: Path, secured_copy: Path
) -> None:
    if shutil.which("ssh") is None:
        pytest.skip("no ssh client")
    config = tmp_path / "ssh_config"
    config.write_text("Host *\n  BatchMode yes\n  ConnectTimeout 5\n")
    result = builder_cli(
        "--config",
        str(secured_copy),
        "verify",
        "slave",
        "--host",
        "ssh://centos@127.0.0.1:1",
        "--node",
        "test167",
        "--ssh-config",
        str(config),
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith("error: cannot reach ssh://centos@127.0.0.1:1 over SSH: ")
    assert "Connection refused" in result.stderr
    assert not list(tmp_path.glob("verify*.xml"))


# Both nodes' checks must be under way at once for either to get past this barrier.
BOTH_NODES = multiprocessing.get_context("fork").Barrier(2)


def _meet_the_other_node(*args: object) -> str:
    node = args[-1]
    assert isinstance(node, Node)
    BOTH_NODES.wait(timeout=60)  # raises BrokenBarrierError when the nodes run in turn
    return f"{node.hostname} checked in process {os.getpid()}"


def test_verify_cluster_checks_the_nodes_at_once_in_inventory_order(
    loaded: LoadedConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "_verify_node", _meet_the_other_node)
    rows = runner.verify_cluster(loaded, "centos", None, None, None)
    assert [node.hostname for node, _ in rows] == ["test166", "test167"]
    processes = {str(result).rsplit(" ", 1)[1] for _, result in rows}
    assert len(processes) == 2
    assert str(os.getpid()) not in processes
