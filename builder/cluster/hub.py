"""The cluster network: a userspace hub for QEMU's UDP socket networking on loopback.

Every VM's cluster NIC is `-netdev socket,udp=127.0.0.1:HUB,localaddr=127.0.0.1:PORT`:
QEMU sends each Ethernet frame as one datagram to the hub and receives frames
on PORT. The hub repeats every frame to every other node's port. Nothing is
bound to anything but 127.0.0.1, nothing needs privileges, and no frame of the
inventory's addresses ever reaches a real network.

    python -m builder.cluster.hub HUB_PORT NODE_PORT...
"""

from __future__ import annotations

import contextlib
import socket
import sys
from collections.abc import Sequence

LOOPBACK = "127.0.0.1"
MAX_FRAME = 65536


def serve(hub_port: int, node_ports: Sequence[int]) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((LOOPBACK, hub_port))
    peers = [(LOOPBACK, port) for port in node_ports]
    while True:
        try:
            frame, source = sock.recvfrom(MAX_FRAME)
        except OSError:
            continue
        if source not in peers:
            continue  # only the cluster's own VMs
        for peer in peers:
            if peer != source:
                with contextlib.suppress(OSError):  # a VM that is down
                    sock.sendto(frame, peer)


def main(argv: Sequence[str]) -> None:
    hub, *nodes = (int(value) for value in argv)
    serve(hub, nodes)


if __name__ == "__main__":
    main(sys.argv[1:])
