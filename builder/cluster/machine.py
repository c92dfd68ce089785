"""One node as a VM: its ports, NICs, network config and QEMU command (pure functions).

Each VM has two NICs. The cluster NIC (first) is on the hub's network
(builder/cluster/hub.py) with the node's inventory address, static, so
/etc/hosts and the zk URL work unchanged. The host NIC is QEMU's user-mode
network with `restrict=on` (the guest reaches nothing beyond it) and
forwards from 127.0.0.1 to the node's SSH and web UIs, addressed at the
node's inventory IP (Mesos binds its --ip).
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builder.config.cluster import service_port
from builder.config.model import MASTER_ROLE, SLAVE_ROLE, Node

LOOPBACK = "127.0.0.1"
# QEMU's user network (10.0.2.0/24 by default) hands the guest the host's forwarded
# connections from its own host address: the one source `up` adds to a node's firewall.
FORWARDED_FROM = "10.0.2.2/32"
SSH_PORT = 22
MEMORY_MIB = 1024
# What the host reaches on each node, by role, forward name -> service: the web UIs and
# APIs (over HTTPS where a secured cluster serves them so), ZooKeeper for `srvr`.
MASTER_FORWARDS = {
    "zookeeper": "zookeeper",
    "mesos": "mesos-master",
    "marathon": "marathon",
    "chronos": "chronos",
}
SLAVE_FORWARDS = {"agent": "mesos-slave"}
FORWARDED_SERVICES = MASTER_FORWARDS | SLAVE_FORWARDS


def mac(hostname: str, nic: int) -> str:
    """A stable, locally administered MAC per node and NIC (52:54:00 is QEMU's prefix)."""
    digest = hashlib.sha256(f"{hostname}\0{nic}".encode()).digest()
    return "52:54:00:" + ":".join(f"{b:02x}" for b in digest[:3])


def guest_ports(node: Node, secured: bool) -> dict[str, int]:
    """The node's forwarded services, name -> guest port."""
    services: dict[str, str] = {}
    if MASTER_ROLE in node.roles:
        services |= MASTER_FORWARDS
    if SLAVE_ROLE in node.roles:
        services |= SLAVE_FORWARDS
    return {"ssh": SSH_PORT} | {
        name: service_port(service, secured) for name, service in services.items()
    }


@dataclass(frozen=True)
class VmSpec:
    """Everything needed to start one node's VM again, as the state file records it."""

    hostname: str
    ip: str
    roles: tuple[str, ...]
    image: str  # the build's qcow2 (never written)
    overlay: str  # copy-on-write over it, this VM's disk
    seed: str  # the seed ISO
    serial: str  # the console log
    pidfile: str
    cluster_port: int  # this VM's UDP port on loopback
    forwards: Mapping[str, tuple[int, int]]  # name -> (host port, guest port)

    def to_json(self) -> dict[str, Any]:
        return {
            "hostname": self.hostname,
            "ip": self.ip,
            "roles": list(self.roles),
            "image": self.image,
            "overlay": self.overlay,
            "seed": self.seed,
            "serial": self.serial,
            "pidfile": self.pidfile,
            "cluster_port": self.cluster_port,
            "forwards": {name: list(pair) for name, pair in self.forwards.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> VmSpec:
        return cls(
            hostname=str(data["hostname"]),
            ip=str(data["ip"]),
            roles=tuple(data["roles"]),
            image=str(data["image"]),
            overlay=str(data["overlay"]),
            seed=str(data["seed"]),
            serial=str(data["serial"]),
            pidfile=str(data["pidfile"]),
            cluster_port=int(data["cluster_port"]),
            forwards={name: (int(p[0]), int(p[1])) for name, p in data["forwards"].items()},
        )

    def host_port(self, name: str) -> int | None:
        pair = self.forwards.get(name)
        return pair[0] if pair else None


def network_config(hostname: str, ip: str, network: str) -> dict[str, Any]:
    """Network config version 2: the inventory address on the cluster NIC, DHCP on the host
    NIC (QEMU's user network), each matched by its MAC."""
    prefix = ipaddress.ip_network(network, strict=False).prefixlen
    return {
        "version": 2,
        "ethernets": {
            "cluster": {
                "match": {"macaddress": mac(hostname, 0)},
                "addresses": [f"{ip}/{prefix}"],
            },
            "host": {"match": {"macaddress": mac(hostname, 1)}, "dhcp4": True},
        },
    }


def qemu_command(spec: VmSpec, hub_port: int, accelerator: str) -> list[str]:
    forwards = ",".join(
        f"hostfwd=tcp:{LOOPBACK}:{host}-{spec.ip if guest != SSH_PORT else ''}:{guest}"
        for host, guest in spec.forwards.values()
    )
    return [
        "qemu-system-x86_64",
        "-name",
        f"builder-{spec.hostname}",
        "-machine",
        f"accel={accelerator}",
        "-m",
        str(MEMORY_MIB),
        "-display",
        "none",
        "-monitor",
        "none",
        "-serial",
        f"file:{spec.serial}",
        "-drive",
        f"file={spec.overlay},if=virtio,format=qcow2",
        "-drive",
        f"file={spec.seed},media=cdrom,format=raw,readonly=on",
        "-netdev",
        f"socket,id=cluster,udp={LOOPBACK}:{hub_port},localaddr={LOOPBACK}:{spec.cluster_port}",
        "-device",
        f"virtio-net-pci,netdev=cluster,mac={mac(spec.hostname, 0)}",
        "-netdev",
        f"user,id=host,restrict=on,{forwards}",
        "-device",
        f"virtio-net-pci,netdev=host,mac={mac(spec.hostname, 1)}",
        "-pidfile",
        spec.pidfile,
        "-daemonize",
    ]


def overlay_command(image: Path, overlay: Path) -> list[str]:
    backing = str(image.resolve())
    return ["qemu-img", "create", "-q", "-f", "qcow2", "-b", backing, "-F", "qcow2", str(overlay)]
