"""The node layer, slave role: the Mesos agent answering with the cluster's ZooKeeper URL."""

from __future__ import annotations

import json

from builder.proc import redact
from builder.verify.contract import NodeContract
from builder.verify.specs.plugin import Check, Probe


def test_mesos_agent_state(probe: Probe, contract: NodeContract, check: Check) -> None:
    assert contract.slave_zk_url is not None, "a slave spec on a node without the slave role"
    url = f"{contract.endpoint('mesos-slave')}/state"
    body = probe.http(url)
    found: object = "no answer"
    if body is not None:
        try:
            master = json.loads(body).get("flags", {}).get("master")
            found = redact(master) if isinstance(master, str) else master
        except (ValueError, AttributeError):
            found = body[:60]
    check(f"{url} flags master", contract.slave_zk_url, found)
