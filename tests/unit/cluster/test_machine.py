"""One node as a VM: the QEMU command, the network config, the ports (pure functions)."""

from __future__ import annotations

from pathlib import Path

from builder.cluster.machine import VmSpec, guest_ports, mac, network_config, qemu_command
from builder.config.load import LoadedConfig


def _spec() -> VmSpec:
    return VmSpec(
        hostname="test167",
        ip="10.86.255.167",
        roles=("slave",),
        image="/o/slave/mesos-slave.qcow2",
        overlay="/s/test167.qcow2",
        seed="/s/test167-cidata.iso",
        serial="/s/test167.serial.log",
        pidfile="/s/test167.pid",
        cluster_port=40001,
        forwards={"ssh": (40100, 22), "agent": (40101, 5051)},
    )


def test_qemu_command_is_exact() -> None:
    assert qemu_command(_spec(), 40000, "tcg") == [
        "qemu-system-x86_64",
        "-name",
        "builder-test167",
        "-machine",
        "accel=tcg",
        "-m",
        "1024",
        "-display",
        "none",
        "-monitor",
        "none",
        "-serial",
        "file:/s/test167.serial.log",
        "-drive",
        "file=/s/test167.qcow2,if=virtio,format=qcow2",
        "-drive",
        "file=/s/test167-cidata.iso,media=cdrom,format=raw,readonly=on",
        "-netdev",
        "socket,id=cluster,udp=127.0.0.1:40000,localaddr=127.0.0.1:40001",
        "-device",
        f"virtio-net-pci,netdev=cluster,mac={mac('test167', 0)}",
        "-netdev",
        "user,id=host,restrict=on,hostfwd=tcp:127.0.0.1:40100-:22,"
        "hostfwd=tcp:127.0.0.1:40101-10.86.255.167:5051",
        "-device",
        f"virtio-net-pci,netdev=host,mac={mac('test167', 1)}",
        "-pidfile",
        "/s/test167.pid",
        "-daemonize",
    ]


def test_everything_listens_on_loopback_only() -> None:
    command = " ".join(qemu_command(_spec(), 40000, "kvm"))
    assert "accel=kvm" in command
    assert "restrict=on" in command
    for forward in command.split("hostfwd=tcp:")[1:]:
        assert forward.startswith("127.0.0.1:")


def test_macs_are_stable_distinct_and_local() -> None:
    macs = {mac(name, nic) for name in ("test166", "test167", "m1") for nic in (0, 1)}
    assert len(macs) == 6
    assert all(m.startswith("52:54:00:") for m in macs)
    assert mac("test166", 0) == mac("test166", 0)


def test_network_config_puts_the_inventory_address_on_the_cluster_nic() -> None:
    assert network_config("test167", "10.86.255.167", "10.86.255.0/24") == {
        "version": 2,
        "ethernets": {
            "cluster": {
                "match": {"macaddress": mac("test167", 0)},
                "addresses": ["10.86.255.167/24"],
            },
            "host": {"match": {"macaddress": mac("test167", 1)}, "dhcp4": True},
        },
    }


def test_forwarded_ports_follow_the_roles(loaded: LoadedConfig) -> None:
    test166, test167 = loaded.config.cluster.nodes
    assert guest_ports(test166, secured=False) == {
        "ssh": 22,
        "zookeeper": 2181,
        "mesos": 5050,
        "marathon": 8080,
        "chronos": 4400,
        "agent": 5051,
    }
    assert guest_ports(test167, secured=False) == {"ssh": 22, "agent": 5051}
    # a secured cluster's Marathon and Chronos answer on HTTPS only
    assert guest_ports(test166, secured=True) == {
        "ssh": 22,
        "zookeeper": 2181,
        "mesos": 5050,
        "marathon": 8443,
        "chronos": 4443,
        "agent": 5051,
    }


def test_spec_round_trips_through_json() -> None:
    spec = _spec()
    assert VmSpec.from_json(spec.to_json()) == spec
    assert spec.host_port("agent") == 40101
    assert spec.host_port("mesos") is None
    assert Path(spec.pidfile).name == "test167.pid"
