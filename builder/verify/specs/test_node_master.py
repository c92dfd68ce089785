"""The node layer, master role: ZooKeeper, Mesos, Marathon and Chronos as first boot set them up.

The HTTP checks run on the node (curl, else python3) against the real
endpoints: Mesos `/master/flags` and `/master/state` (the leader's) on 5050,
Marathon `/v2/info` and Chronos' UI: on 8080 and 4400, or on a secured cluster over
HTTPS on 8443 and 4443, trusting only the cluster CA (`ClusterFacts.port`/`scheme`;
the contract's endpoints).
"""

from __future__ import annotations

import json
from typing import Any

from builder.config.cluster import SERVICE_PORTS
from builder.proc import redact, without_userinfo
from builder.verify.contract import MasterApi, NodeContract
from builder.verify.specs.plugin import Check, Probe


def _master(contract: NodeContract) -> MasterApi:
    assert contract.master is not None, "a master spec on a node without the master role"
    return contract.master


def _json(probe: Probe, url: str, attempts: int = 30) -> dict[str, Any] | None:
    body = probe.http(url, attempts)
    if body is None:
        return None
    try:
        value = json.loads(body)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _shown(url: object) -> object:
    """A zk URL as a report may show it: its credentials redacted."""
    return redact(url) if isinstance(url, str) else url


def test_mesos_master_flags(probe: Probe, contract: NodeContract, check: Check) -> None:
    """This master's own flags: /master/flags answers on every master, leading or not."""
    master = _master(contract)
    url = f"{contract.endpoint('mesos-master')}/master/flags"
    answer = _json(probe, url)
    flags = answer.get("flags", {}) if answer else {}
    check(
        f"{url} zk, quorum",
        (master.zk_url, str(master.quorum)),
        (_shown(flags.get("zk")), flags.get("quorum")) if answer else "no answer",
    )
    # Mesos lists every flag with its value; a boolean left out is false
    check(
        f"{url} authentication",
        dict(master.auth_flags),
        {flag: flags.get(flag, "false") for flag, _ in master.auth_flags}
        if answer
        else "no answer",
    )


def test_mesos_agents_registered(probe: Probe, contract: NodeContract, check: Check) -> None:
    """Every registered agent is a slave of the inventory; with --cluster, every slave is.

    Asked of the leading master: any other master answers /master/state with a redirect
    to it (followed from the node, which reaches the masters by name), and while no
    master leads (a lone master of three, no quorum) there is no agent to check, unless
    --cluster wants them all."""
    master = _master(contract)
    url = f"{contract.endpoint('mesos-master')}/master/state"
    state = _json(probe, url) if master.every_agent else _json(probe, url, attempts=5)
    if state is None:
        leader = "no leading master answered"
        check(f"{url} agents", "the leader's answer", leader, not master.every_agent)
        return
    agents = sorted(str(agent.get("hostname")) for agent in state.get("slaves", []))
    expected = sorted(master.agents)
    if master.every_agent:
        check(f"{url} registered agents", expected, agents)
    else:
        strangers = [agent for agent in agents if agent not in expected]
        check(
            f"{url} registered agents (of {', '.join(expected)})",
            "only inventory slaves",
            agents,
            not strangers,
        )


def test_marathon_info(probe: Probe, contract: NodeContract, check: Check) -> None:
    """Marathon's --master and --zk as it reports them, hosts and paths: Marathon 1.5's
    /v2/info leaves the zk URL's credentials out, 1.7+ masks them (`xxxxxxxx:xxxxxxxx@`),
    so no version's answer is compared on them (the credentials Marathon was given are
    checked by /etc/default/marathon's digest) and none reaches the report."""
    master = _master(contract)
    url = f"{contract.endpoint('marathon')}/v2/info"
    info = _json(probe, url)
    found: object = "no answer"
    if info is not None:
        found = (
            _plain(info.get("marathon_config", {}).get("master")),
            _plain(info.get("zookeeper_config", {}).get("zk")),
        )
    expected = (without_userinfo(master.marathon_master), without_userinfo(master.marathon_zk))
    check(f"{url} master, zk", expected, found)


def _plain(url: object) -> object:
    return without_userinfo(url) if isinstance(url, str) else url


def test_mesos_znode_acls(probe: Probe, contract: NodeContract, check: Check) -> None:
    """Who may add a contender under the masters' zk path (a fake master that leads once
    the real ones fail over) or delete one: on a secured cluster only Mesos' digest user,
    everyone may read; a lab's is open to all."""
    master = _master(contract)
    found = probe.zk_acls(contract.address, SERVICE_PORTS["zookeeper"], master.zk_path)
    check(f"{master.zk_path} znode ACL", ", ".join(master.znode_acl), found.path)


def test_mesos_leader_znode_acl(probe: Probe, contract: NodeContract, check: Check) -> None:
    """The leading master's record: on a secured cluster only Mesos' digest user may
    rewrite it, everyone may read it; a lab's is open to all."""
    master = _master(contract)
    found = probe.zk_acls(contract.address, SERVICE_PORTS["zookeeper"], master.zk_path)
    check(f"{master.zk_path} leader znode ACL", ", ".join(master.znode_acl), found.leader)


def test_chronos_ui(probe: Probe, contract: NodeContract, check: Check) -> None:
    """Chronos 2.x serves its UI page (`<title>Chronos</title>`) at /; 3.x a React page with
    no title: the check is an HTML page on Chronos' port."""
    _master(contract)
    url = f"{contract.endpoint('chronos')}/"
    page = probe.http(url)
    found = (
        "no answer" if page is None else ("an HTML page" if "<html" in page.lower() else page[:60])
    )
    check(f"{url} (Chronos UI)", "an HTML page", found)
