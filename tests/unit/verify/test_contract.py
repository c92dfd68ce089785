"""The contract selects its values from the config's facts; it computes none of them.

Shown by identity (the contract holds the very objects of ClusterFacts) and by
markers: facts with values no computation would give reach the contract and
the seed unchanged, so neither rebuilds them from the inventory.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from builder.config.certificates import NOT_KEPT
from builder.config.cluster import Access, ClusterFacts, FirewallZone
from builder.config.load import LoadedConfig, load_config
from builder.config.roles import compose
from builder.config.secrets import load_secrets
from builder.firstboot.seed import RELOAD_FIREWALL, node_files, node_seed, node_tls, user_data
from builder.render.kickstart import BUILD_KEY_COMMENT
from builder.render.provision import image_files, unit_states
from builder.verify.contract import SecretFile, image_contract, node_contract, sha256_prefix
from tests.conftest import SAMPLE_SECRETS


def test_node_contract_holds_the_facts_objects(config_copy: Path) -> None:
    """A lab's contract (no credentials in its zk URLs) holds the facts' very objects."""
    cluster = config_copy / "cluster.yaml"
    cluster.write_text(cluster.read_text() + "security: none\n")
    loaded = load_config(config_copy)
    facts = ClusterFacts.of(loaded)
    [test166, test167] = loaded.config.cluster.nodes
    master = node_contract(loaded, test166, facts)
    assert master.master is not None
    assert master.master.zk_url is facts.zk_url
    assert master.master.marathon_zk is facts.marathon_zk
    assert master.master.agents is facts.agents
    assert master.services is facts.units(test166)
    assert master.zones is facts.firewall(test166)
    assert node_contract(loaded, test167, facts).slave_zk_url is facts.zk_url


def _marked(facts: ClusterFacts) -> ClusterFacts:
    """The facts with values no code would compute from this inventory."""
    return dataclasses.replace(
        facts,
        zk_hosts="marker-zk-hosts:1",
        zk_url="zk://marker-zk-url/mesos",
        marathon_zk="zk://marker-marathon/marathon",
        quorum=7,
        hosts="# marker hosts\n",
        zoo_cfg="# marker zoo.cfg\n",
        master_numbers={"test166": 42},
        agents=("marker-agent",),
        services={key: ("mesos-slave", "zookeeper") for key in facts.services},
        zones={key: (MARKER_ZONE,) for key in facts.zones},
    )


MARKER_ZONE = FirewallZone("marker", ("192.0.2.0/24",), Access(("marker-service",)))


def test_contract_and_seed_select_from_the_facts(loaded: LoadedConfig) -> None:
    marked = _marked(ClusterFacts.of(loaded))
    test166 = loaded.config.cluster.nodes[0]
    contract = node_contract(loaded, test166, marked)
    assert contract.master is not None
    # a secured cluster's zk URLs: the facts' hosts with the digest users' credentials,
    # shown redacted
    zk = "zk://<redacted>@marker-zk-hosts:1/mesos"
    assert (contract.master.zk_url, contract.master.quorum) == (zk, 7)
    assert contract.master.marathon_zk == "zk://<redacted>@marker-zk-hosts:1/marathon"
    assert contract.master.agents == ("marker-agent",)
    assert contract.slave_zk_url == zk
    password = SAMPLE_SECRETS.values["zookeeper_password"]
    zk_url_file = "/etc/builder/credentials/mesos-zk.url"
    assert SecretFile.of(zk_url_file, f"zk://mesos:{password}@marker-zk-hosts:1/mesos") in (
        contract.secret_files
    )
    assert contract.services == ("mesos-slave", "zookeeper")
    assert contract.listening == (("mesos-slave", 5051), ("zookeeper", 2181))
    assert contract.idle_units == ("mesos-master", "marathon", "chronos", "docker")
    files = dict(contract.files)
    # the node's files, and the cluster CA's certificate (a secured master serves HTTPS)
    assert SAMPLE_SECRETS.ca is not None
    ca_file = {"/etc/builder/tls/ca.crt": SAMPLE_SECRETS.ca.cert_pem}
    assert files == node_files(marked, test166) | ca_file
    assert files["/etc/hosts"] == "# marker hosts\n"
    assert files["/etc/chronos/conf/master"] == "zk://marker-zk-url/mesos\n"
    assert files["/etc/mesos-master/quorum"] == "7\n"
    assert files["/var/lib/zookeeper/myid"] == "42\n"
    assert files["/etc/zookeeper/conf/zoo.cfg"] == "# marker zoo.cfg\n"
    assert files["/etc/chronos/conf/zk_hosts"] == "marker-zk-hosts:1\n"
    assert files[MARKER_ZONE.path] == MARKER_ZONE.xml
    assert contract.zones == (MARKER_ZONE,)
    runcmd = user_data(marked, test166, SAMPLE_SECRETS)["runcmd"]
    assert runcmd[0] == RELOAD_FIREWALL
    assert runcmd[1] == ["systemctl", "enable", "mesos-slave.service", "zookeeper.service"]


def test_image_contract_is_what_provision_writes(loaded: LoadedConfig) -> None:
    for names in (("master",), ("slave",), ("master", "slave")):
        roles = compose(loaded, names)
        contract = image_contract(loaded, roles)
        assert contract.files == image_files(loaded, roles)
        states = unit_states(loaded.config.os.stack_units, roles.services)
        assert [(u.unit, u.state) for u in contract.units] == [
            (unit, state.value) for unit, state in states.items()
        ]
        assert contract.firewall_services == ("dhcpv6-client", "ssh")
        assert contract.build_key_comment is BUILD_KEY_COMMENT


def test_the_contract_expects_the_keystore_builder_kept(loaded: LoadedConfig) -> None:
    """A secured master's keystore is checked by the digest of the one its seed got (kept
    beside the CA); before any seed, builder kept none, and no node's can pass."""
    facts = ClusterFacts.of(loaded)
    test166 = loaded.config.cluster.nodes[0]

    def expected() -> str:
        digests = {f.path: f.digest for f in node_contract(loaded, test166, facts).secret_files}
        return digests["/etc/builder/tls/node.p12"]

    assert expected() == NOT_KEPT
    secrets = load_secrets(loaded.directory)
    assert secrets is not None
    node_seed(loaded, test166, facts, secrets)
    kept = node_tls(facts, test166, secrets, issue=False)
    assert kept is not None
    assert kept.keystore is not None
    assert expected() == sha256_prefix(kept.keystore)
