"""`builder up`'s inputs and state without VMs: missing images, seeds, down and status."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from builder import proc
from builder.cluster import health, lifecycle
from builder.cluster.machine import mac
from builder.config.cluster import ClusterFacts
from builder.config.load import LoadedConfig, load_config
from builder.errors import BuilderError, UserError
from builder.firstboot.seed import NETWORK_CONFIG, USER_DATA, SeedFormat, node_seed, write_seeds
from builder.ssh_master import CONTROL_PERSIST
from tests.conftest import SAMPLE_SECRETS


@pytest.fixture
def loaded(secured_copy: Path) -> LoadedConfig:
    """The default cluster, secured (its secrets beside it), as `up` wants it."""
    return load_config(secured_copy)


def test_missing_images_are_named_with_the_build_command(
    loaded: LoadedConfig, tmp_path: Path
) -> None:
    with pytest.raises(UserError) as caught:
        lifecycle.find_images(loaded, loaded.config.cluster.nodes, tmp_path / "output")
    assert caught.value.message == (
        f"no image for test166 needs {tmp_path}/output/master-slave/mesos-master-slave.qcow2: "
        "run `builder build master,slave`; "
        f"test167 needs {tmp_path}/output/slave/mesos-slave.qcow2: run `builder build slave`"
    )
    assert caught.value.hint == "builder build master,slave slave"


def test_seed_gets_the_cluster_key_and_network(loaded: LoadedConfig) -> None:
    facts = ClusterFacts.of(loaded)
    test167 = loaded.config.cluster.nodes[1]
    files = lifecycle.seed_files(loaded, facts, test167, "ssh-ed25519 AAAAkey builder-up", None)
    document = YAML(typ="safe").load(files[USER_DATA].decode())
    assert document["ssh_authorized_keys"] == ["ssh-ed25519 AAAAkey builder-up"]
    assert document["hostname"] == "test167"
    # the host's forwarded ports arrive from QEMU's user network: a zone of up's own
    zones = {e["path"]: e["content"] for e in document["write_files"] if "firewalld" in e["path"]}
    assert set(zones) == {
        "/etc/firewalld/zones/public.xml",
        "/etc/firewalld/zones/cluster-admin.xml",
        "/etc/firewalld/zones/host.xml",
    }
    assert zones["/etc/firewalld/zones/host.xml"] == facts.host_zone(test167, ["10.0.2.2/32"]).xml
    # a real seed never carries it
    assert "10.0.2.2" not in node_seed(loaded, test167, facts, SAMPLE_SECRETS).user_data
    network = YAML(typ="safe").load(files[NETWORK_CONFIG].decode())
    assert network["ethernets"]["cluster"] == {
        "match": {"macaddress": mac("test167", 0)},
        "addresses": ["10.86.255.167/24"],
    }


def test_seeds_from_a_directory_are_used_as_they_are(loaded: LoadedConfig, tmp_path: Path) -> None:
    write_seeds(loaded, loaded.config.cluster.nodes, tmp_path / "seeds", SeedFormat.DIR)
    user_data = tmp_path / "seeds" / "test166" / USER_DATA
    user_data.write_text(user_data.read_text().replace("      1\n", "      9\n"))
    facts = ClusterFacts.of(loaded)
    test166 = loaded.config.cluster.nodes[0]
    files = lifecycle.seed_files(loaded, facts, test166, "ssh-ed25519 K k", tmp_path / "seeds")
    assert "      9\n" in files[USER_DATA].decode()
    document = YAML(typ="safe").load(files[USER_DATA].decode())
    written = {entry["path"]: entry["content"] for entry in document["write_files"]}
    # the edited seed, whole, plus up's own firewall source and key
    original = YAML(typ="safe").load(user_data.read_text())
    assert all(written[e["path"]] == e["content"] for e in original["write_files"])
    assert '<source address="10.0.2.2/32"/>' in written["/etc/firewalld/zones/host.xml"]
    assert document["ssh_authorized_keys"][0] == "ssh-ed25519 K k"
    assert document["runcmd"] == original["runcmd"]
    with pytest.raises(UserError, match="no seed"):
        lifecycle.seed_files(loaded, facts, test166, "ssh-ed25519 K k", tmp_path / "nothing")


def test_down_and_status_without_a_cluster(loaded: LoadedConfig, tmp_path: Path) -> None:
    state = tmp_path / ".builder" / "cluster"
    assert lifecycle.down(state) == ["no cluster is running here"]
    assert lifecycle.down(state) == ["no cluster is running here"]
    lines, healthy = lifecycle.status(loaded, state)
    assert (lines, healthy) == (["no cluster is running here (builder up starts one)"], False)
    with pytest.raises(UserError, match="no cluster is running here"):
        lifecycle.ssh_command(state, "test166", [])


def test_unknown_node_is_refused_before_anything(loaded: LoadedConfig, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no node nope in the cluster"):
        lifecycle.up(loaded, ["nope"], output=tmp_path, directory=tmp_path / "state", say=print)
    assert not (tmp_path / "state").exists()


def test_up_refuses_a_cluster_network_holding_the_forwarding_address(
    config_copy: Path, loaded: LoadedConfig
) -> None:
    """firewalld takes a source in one zone only: 10.0.2.2 cannot be both up's and the
    cluster's."""
    cluster = config_copy / "cluster.yaml"
    cluster.write_text(
        cluster.read_text().replace("nodes:", "admin_networks: [10.0.0.0/8]\nnodes:", 1)
    )
    with pytest.raises(UserError, match=r"hold 10\.0\.2\.2/32"):
        lifecycle.check_forwarding_source(ClusterFacts.of(load_config(config_copy)))
    lifecycle.check_forwarding_source(ClusterFacts.of(loaded))  # the default: apart


def test_the_hub_network_is_the_cluster_network_holding_the_node(config_copy: Path) -> None:
    cluster = config_copy / "cluster.yaml"
    cluster.write_text(
        cluster.read_text().replace(
            "network: 10.86.255.0/24", "networks: [10.86.0.0/16, 10.86.255.0/24]"
        )
    )
    loaded = load_config(config_copy)
    assert lifecycle.hub_network(loaded, loaded.config.cluster.nodes[0]) == "10.86.0.0/16"


def test_up_stops_at_its_deadline_naming_what_is_unhealthy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past its deadline `up` fails (exit 1) with one line: every part not healthy, as the
    health check saw it last (the VM test names a member outside the ensemble through the
    same check, with `status`)."""
    seen = health.Health(
        (
            health.Part("zookeeper", False, "m2 not in the ensemble (m1 leader, m2 no answer)"),
            health.Part("mesos", True, "m1 leads"),
            health.Part("marathon", False, "no /v2/leader answers"),
        ),
        "m1",
    )
    monkeypatch.setattr(health, "check", lambda *args, **kwargs: seen)
    state = lifecycle.ClusterState(tmp_path, 0, str(tmp_path / "hub.pid"), "tcg", "centos", ())
    said: list[str] = []
    with pytest.raises(BuilderError) as raised:
        lifecycle.wait_healthy(state, [], set(), 0, said.append)
    assert str(raised.value) == (
        "the cluster is not healthy after 0 s: zookeeper: m2 not in the ensemble "
        "(m1 leader, m2 no answer); marathon: no /v2/leader answers"
    )
    assert raised.value.exit_code == 1
    assert said == []


def _one_vm(config: LoadedConfig, directory: Path) -> lifecycle.ClusterState:
    """test166 as `up` plans it (ports picked, nothing started or saved)."""
    image = lifecycle.Image(directory / "disk.qcow2", "tcg")
    [vm] = lifecycle.plan(config, directory, config.config.cluster.nodes[:1], {"test166": image})
    return lifecycle.ClusterState(directory, 0, "", "tcg", "centos", (vm,))


def test_the_url_table_says_https_where_the_cluster_serves_it(
    loaded: LoadedConfig, config_copy: Path, tmp_path: Path
) -> None:
    """A secured cluster's Marathon and Chronos are printed as https:// URLs (on their
    HTTPS guest ports), Mesos' master and agent as https:// on 5050 and 5051, with the CA
    to trust and how to ask by the node's name; a lab's are plain http:// on 8080 and
    4400, with no CA to trust."""
    state = _one_vm(loaded, tmp_path)
    [vm] = state.vms
    (marathon, to_marathon), (chronos, to_chronos) = vm.forwards["marathon"], vm.forwards["chronos"]
    assert (to_marathon, to_chronos) == (8443, 4443)
    trust = health.trust(loaded)
    assert trust is not None
    row = lifecycle.url_lines(state, trust)[1]
    assert f"marathon=https://127.0.0.1:{marathon}" in row
    assert f"chronos=https://127.0.0.1:{chronos}" in row
    assert f"mesos=https://127.0.0.1:{vm.forwards['mesos'][0]}" in row
    assert f"agent=https://127.0.0.1:{vm.forwards['agent'][0]}" in row
    assert (vm.forwards["mesos"][1], vm.forwards["agent"][1]) == (5050, 5051)
    shown = lifecycle.trust_line(trust, state)
    assert str(loaded.directory / "cluster-ca.crt") in shown
    assert f"--resolve test166:{marathon}:127.0.0.1 https://test166:{marathon}/v2/info" in shown
    cluster = config_copy / "cluster.yaml"
    cluster.write_text("security: none\n" + cluster.read_text())
    lab = load_config(config_copy)
    state = _one_vm(lab, tmp_path)
    assert (state.vms[0].forwards["marathon"][1], state.vms[0].forwards["chronos"][1]) == (
        8080,
        4400,
    )
    assert "https" not in lifecycle.url_lines(state, health.trust(lab))[1]
    assert health.trust(lab) is None


def test_builder_ssh_shares_one_connection_per_node(
    loaded: LoadedConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ssh_config `builder ssh` reads keeps one master connection per node, its socket
    in the state's private directory; the state remembers that directory, and `down` asks
    every master there to exit and removes it."""
    control = tmp_path / "control"
    control.mkdir(mode=0o700)
    state = lifecycle.ClusterState(
        tmp_path / "state", 0, "", "tcg", "centos", _one_vm(loaded, tmp_path).vms, str(control)
    )
    state.directory.mkdir()
    state.save()
    assert lifecycle.ClusterState.load(state.directory) == state
    lifecycle.write_ssh_config(state)
    config = state.ssh_config.read_text()
    assert "  ControlMaster auto\n" in config
    assert f"  ControlPath {control}/%C\n" in config
    assert f"  ControlPersist {CONTROL_PERSIST}\n" in config
    asked: list[list[str]] = []
    monkeypatch.setattr(proc, "run", lambda argv, **_: asked.append(list(argv)))
    for name in ("a1", "b2"):
        (control / name).touch()
    lifecycle.down(state.directory)
    assert asked == [
        ["ssh", "-S", str(control / name), "-O", "exit", "node"] for name in ("a1", "b2")
    ]
    assert not control.exists()
    assert not state.directory.exists()


def test_a_state_from_before_shared_connections_shares_none(
    loaded: LoadedConfig, tmp_path: Path
) -> None:
    state = _one_vm(loaded, tmp_path)
    state.save()
    saved = json.loads((tmp_path / lifecycle.STATE_FILE).read_text())
    del saved["control_dir"]
    (tmp_path / lifecycle.STATE_FILE).write_text(json.dumps(saved))
    old = lifecycle.ClusterState.load(tmp_path)
    assert old is not None
    assert old.control_dir == ""
    lifecycle.write_ssh_config(old)
    assert "Control" not in old.ssh_config.read_text()
