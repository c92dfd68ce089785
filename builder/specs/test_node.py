"""The node layer, every role: what first boot must have made of the node.

The node's name, the cluster's /etc/hosts and every first-boot file with the
exact content the seed carries (ClusterFacts), the node's units enabled and
running, the other stack units never started, and its services listening.
"""

from __future__ import annotations

from typing import Any

from builder.contract import NodeContract
from builder.specs.plugin import Check


def test_hostname(node: Any, contract: NodeContract, check: Check) -> None:
    check("hostname", contract.hostname, node.run("hostname").stdout.strip())


def test_first_boot_file(node: Any, first_boot_file: tuple[str, str], check: Check) -> None:
    path, content = first_boot_file
    handle = node.file(path)
    check(f"{path} content", content, handle.content_string if handle.exists else None)


def test_service_enabled_and_running(node: Any, service: str, check: Check) -> None:
    handle = node.service(service)
    found = (
        f"{'enabled' if handle.is_enabled else 'not enabled'}, "
        f"{'running' if handle.is_running else 'not running'}"
    )
    check(f"unit {service}", "enabled, running", found)


def test_other_stack_unit_never_started(node: Any, idle_unit: str, check: Check) -> None:
    state = node.run("systemctl show -P ActiveState %s", f"{idle_unit}.service").stdout.strip()
    check(f"unit {idle_unit} (not this node's)", "inactive", state or "unknown")


def test_listening(node: Any, listening: tuple[str, int], check: Check) -> None:
    service, port = listening
    found = sorted(
        address for address in node.socket.get_listening_sockets()
        if address.startswith("tcp://") and address.rsplit(":", 1)[1] == str(port)
    )  # fmt: skip
    check(f"{service} listening on TCP {port}", "listening", found or "nothing", bool(found))
