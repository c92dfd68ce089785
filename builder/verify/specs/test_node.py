"""The node layer, every role: what first boot must have made of the node.

The node's name, the cluster's /etc/hosts and every first-boot file with the
exact content the seed carries (ClusterFacts), the node's units enabled and
running, the other stack units never started, its services listening (a secured
node's plain HTTP only where allowed), and the running firewall in the shape first
boot gave it.
"""

from __future__ import annotations

from typing import Any

from builder.config.cluster import FirewallZone
from builder.verify.contract import DIGEST_SHOWN, HttpApi, NodeContract, PlainHttp, SecretFile
from builder.verify.specs.plugin import Check, Probe, RunningFirewall


def test_hostname(node: Any, contract: NodeContract, check: Check) -> None:
    check("hostname", contract.hostname, node.run("hostname").stdout.strip())


def test_first_boot_file(
    probe: Probe, contract: NodeContract, first_boot_file: tuple[str, str], check: Check
) -> None:
    path, content = first_boot_file
    found = probe.files([each for each, _ in contract.files])[path]
    check(f"{path} content", content, found)


def test_service_enabled_and_running(
    probe: Probe, contract: NodeContract, service: str, check: Check
) -> None:
    units = probe.units([f"{each}.service" for each in contract.services])
    check(f"unit {service}", "enabled, active", units[f"{service}.service"])


def test_other_stack_unit_never_started(node: Any, idle_unit: str, check: Check) -> None:
    state = node.run("systemctl show -P ActiveState %s", f"{idle_unit}.service").stdout.strip()
    check(f"unit {idle_unit} (not this node's)", "inactive", state or "unknown")


def test_listening(probe: Probe, listening: tuple[str, int], check: Check) -> None:
    service, port = listening
    found = _addresses_on(probe, port)
    check(f"{service} listening on TCP {port}", "listening", found or "nothing", bool(found))


def _addresses_on(probe: Probe, port: int) -> list[str]:
    """The addresses a TCP port listens on (testinfra's tcp://ADDRESS:PORT)."""
    return sorted(
        address.removeprefix("tcp://").rsplit(":", 1)[0]
        for address in probe.listening()
        if address.startswith("tcp://") and address.rsplit(":", 1)[1] == str(port)
    )


def test_plain_http_only_where_allowed(probe: Probe, plain_http: PlainHttp, check: Check) -> None:
    """A secured node's Marathon and Chronos answer over HTTPS: their plain HTTP port
    listens nowhere (Marathon) or on loopback only (Chronos)."""
    found = _addresses_on(probe, plain_http.port)
    check(
        f"{plain_http.service}'s plain HTTP on TCP {plain_http.port} listening on",
        ", ".join(plain_http.addresses) or "nothing",
        ", ".join(found) or "nothing",
        found == sorted(plain_http.addresses),
    )


def zone_info(firewall: RunningFirewall, name: str) -> dict[str, str]:
    """A zone of the running firewalld as key -> value ({} when it has no such zone); the
    header's state (active, default) under "state"."""
    return firewall.zones.get(name, {})


def opens(info: dict[str, str], keys: tuple[str, ...]) -> str:
    """What a running zone opens (and to whom), in a fixed order, as one line."""
    if not info:
        return "no such zone in the running firewalld"
    return "; ".join(f"{key}: {' '.join(sorted(info.get(key, '').split())) or '-'}" for key in keys)


ZONE_KEYS = ("sources", "services", "ports")


def test_firewall_zone(probe: Probe, zone: FirewallZone, check: Check) -> None:
    """The running firewall, as first boot shaped it: the zone is active with exactly
    its sources, services and ports (firewalld's runtime, not only the files)."""
    expected = "active; " + "; ".join(
        f"{key}: {' '.join(sorted(values)) or '-'}"
        for key, values in (
            ("sources", zone.sources),
            ("services", zone.access.services),
            ("ports", [port.firewalld for port in zone.access.ports]),
        )
    )
    firewall = probe.firewall()
    if firewall is None:
        check(f"firewall zone {zone.name}", expected, not_answering(probe))
        return
    info = zone_info(firewall, zone.name)
    state = "active" if "active" in info.get("state", "").split(", ") else "inactive"
    check(f"firewall zone {zone.name}", expected, f"{state}; {opens(info, ZONE_KEYS)}")


def not_answering(probe: Probe) -> str:
    return f"firewalld does not answer: {probe.firewall_error}"


def test_firewall_default_zone(probe: Probe, contract: NodeContract, check: Check) -> None:
    """Everything no zone's source matches lands in the default zone: it opens nothing
    but what must stay (and with no zone drifting on firewalld 0.6, nothing leaks)."""
    firewall = probe.firewall()
    found = (
        f"{firewall.default}: {opens(zone_info(firewall, firewall.default), ZONE_KEYS[1:])}"
        if firewall
        else not_answering(probe)
    )
    services = " ".join(sorted(contract.default_zone_services)) or "-"
    expected = f"{contract.default_zone}: services: {services}; ports: -"
    check("firewall default zone", expected, found)


def test_secret_file_root_only(
    probe: Probe, contract: NodeContract, secret_file: SecretFile, check: Check
) -> None:
    """A file holding a secret: only root reads it (an agent's executors' key and the
    certificates: every user, as the contract's mode says), and it is the seed's (by its
    digest: the content is never read back here or shown)."""
    found = probe.secret_files([each.path for each in contract.secret_files])[secret_file.path]
    if found != "missing":
        found = found[: found.index("sha256:") + len("sha256:") + DIGEST_SHOWN]
    check(
        f"{secret_file.path} mode, owner, digest",
        f"{secret_file.mode} root:root {secret_file.digest}",
        found,
    )


def test_api_requires_authentication(probe: Probe, api: HttpApi, check: Check) -> None:
    """A secured node's API refuses a client without credentials: 401 and its realm."""
    expected = f'401 Basic realm="{api.realm}"'
    check(f"{api.url} without credentials", expected, probe.stranger(api.url))
