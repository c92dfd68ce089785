"""Starting a cluster VM with real QEMU when a forwarded host port was taken after it was
chosen (a port from the ephemeral range can go to any process in between)."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from builder import proc
from builder.cluster import lifecycle
from builder.cluster.lifecycle import ClusterState, start_vms, stop_vm
from builder.cluster.machine import LOOPBACK, VmSpec
from tests.conftest import require_tool

pytestmark = pytest.mark.integration


@pytest.fixture
def taken() -> Iterator[int]:
    """A port on loopback that another process listens on."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        sock.listen()
        yield sock.getsockname()[1]


def _cluster(tmp_path: Path, ssh_port: int) -> ClusterState:
    """One VM with no bootable disk (SeaBIOS waits; nothing here needs a guest)."""
    require_tool("qemu-system-x86_64")
    overlay, seed = tmp_path / "n1.qcow2", tmp_path / "n1-cidata.iso"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(overlay), "1M"], check=True)
    seed.write_bytes(bytes(2048))
    [cluster_port, hub_port] = lifecycle.free_ports(2, socket.SOCK_DGRAM)
    vm = VmSpec(
        hostname="n1",
        ip="10.86.255.1",
        roles=("slave",),
        image=str(overlay),
        overlay=str(overlay),
        seed=str(seed),
        serial=str(tmp_path / "n1.serial.log"),
        pidfile=str(tmp_path / "n1.pid"),
        cluster_port=cluster_port,
        forwards={"ssh": (ssh_port, 22), "agent": (lifecycle.free_ports(1)[0], 5051)},
    )
    return ClusterState(
        directory=tmp_path,
        hub_port=hub_port,
        hub_pidfile=str(tmp_path / "hub.pid"),
        accelerator="tcg",
        ssh_user="centos",
        vms=(vm,),
    )


def test_a_taken_port_is_chosen_again_and_the_state_says_where(tmp_path: Path, taken: int) -> None:
    state = _cluster(tmp_path, taken)
    started = start_vms(state, state.vms)
    [vm] = started.vms
    try:
        assert lifecycle.alive(vm.pidfile)
        ssh = vm.host_port("ssh")
        assert ssh is not None
        assert ssh != taken
        assert vm.forwards["agent"][1] == 5051
        assert ClusterState.load(tmp_path) == started
        assert f"  Port {ssh}\n" in (tmp_path / "ssh_config").read_text()
    finally:
        stop_vm(vm)
    assert not lifecycle.alive(vm.pidfile)


def test_a_port_taken_every_time_fails_with_qemus_line(
    tmp_path: Path, taken: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = _cluster(tmp_path, taken)
    chosen: list[int] = []

    def always_taken(count: int, kind: int = socket.SOCK_STREAM) -> list[int]:
        chosen.append(taken)
        return [taken] * count

    monkeypatch.setattr(lifecycle, "free_ports", always_taken)
    with pytest.raises(proc.ToolFailed) as failed:
        start_vms(state, state.vms)
    assert len(chosen) == lifecycle.START_TRIES - 1
    assert lifecycle.PORT_TAKEN in failed.value.message
    assert not (tmp_path / "cluster.json").exists()
    assert lifecycle.read_pid(state.vms[0].pidfile) is None
