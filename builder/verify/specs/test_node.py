"""The node layer, every role: what first boot must have made of the node.

The node's name, the cluster's /etc/hosts and every first-boot file with the
exact content the seed carries (ClusterFacts), the node's units enabled and
running, the other stack units never started, and its services listening.
"""

from __future__ import annotations

from typing import Any

from builder.verify.contract import NodeContract
from builder.verify.specs.plugin import Check, Probe


def test_hostname(node: Any, contract: NodeContract, check: Check) -> None:
    check("hostname", contract.hostname, node.run("hostname").stdout.strip())


def test_first_boot_file(
    probe: Probe, contract: NodeContract, first_boot_file: tuple[str, str], check: Check
) -> None:
    path, content = first_boot_file
    found = probe.files([each for each, _ in contract.files])[path]
    check(f"{path} content", content, found)


def test_service_enabled_and_running(node: Any, service: str, check: Check) -> None:
    unit = f"{service}.service"
    states = node.run("systemctl is-enabled %s; systemctl is-active %s", unit, unit).stdout
    found = ", ".join(states.split()) or "unknown"
    check(f"unit {service}", "enabled, active", found)


def test_other_stack_unit_never_started(node: Any, idle_unit: str, check: Check) -> None:
    state = node.run("systemctl show -P ActiveState %s", f"{idle_unit}.service").stdout.strip()
    check(f"unit {idle_unit} (not this node's)", "inactive", state or "unknown")


def test_listening(probe: Probe, listening: tuple[str, int], check: Check) -> None:
    service, port = listening
    found = sorted(
        address
        for address in probe.listening()
        if address.startswith("tcp://") and address.rsplit(":", 1)[1] == str(port)
    )
    check(f"{service} listening on TCP {port}", "listening", found or "nothing", bool(found))
