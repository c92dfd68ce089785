"""The firewall and secret-file specs against canned answers of a node: passing where the
firewall has the shape first boot gives it, FAILING where it is broken (the image's ports
still open, a source missing, a UI port given to the cluster, a zone not active,
firewalld not running, a secret readable by others).

The answers are firewalld's own formats: `firewall-cmd --get-default-zone` and
`--list-all-zones` (each zone as `--info-zone` shows it; 1.3 on the stand-in, the same
keys on CentOS 7's 0.6), asked in one command, and the zone files it reads.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import shlex
import shutil
import ssl
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from builder.config import tls
from builder.config.certificates import NOT_KEPT
from builder.config.cluster import ROLE_SECRETS, ClusterFacts
from builder.config.load import LoadedConfig, load_config
from builder.config.roles import compose
from builder.config.secrets import load_secrets, write_secrets
from builder.errors import UserError
from builder.firstboot.seed import MASTER_AUTH_FLAGS, secret_files, shared_tls_files
from builder.verify.contract import (
    HttpApi,
    HttpLogin,
    PlainHttp,
    SecretFile,
    image_contract,
    node_contract,
)
from builder.verify.specs import plugin
from builder.verify.specs import test_image as image_specs
from builder.verify.specs import test_node as node_specs
from builder.verify.specs import test_node_master as master_specs
from tests.conftest import SAMPLE_SECRETS
from tests.fake_firewalld import NOT_RUNNING, fake_firewall_cmd
from tests.fake_firewalld import calls as recorded


@dataclass
class Result:
    stdout: str
    rc: int = 0
    stderr: str = ""


@dataclass
class CannedHost:
    """Answers `run(command, *args)` from a table keyed by the finished command line."""

    answers: dict[str, Result] = field(default_factory=dict)

    def run(self, command: str, *args: str) -> Result:
        line = command % args if args else command
        return self.answers.get(line, Result("", 1))


Seen = list[tuple[str, object, object, bool]]


def _checker(seen: Seen):  # type: ignore[no-untyped-def]
    def check(what: str, expected: object, found: object, passed: bool | None = None) -> None:
        seen.append((what, expected, found, found == expected if passed is None else passed))

    return check


def _info(name: str, state: str, sources: str, services: str, ports: str) -> Result:
    return Result(
        f"{name}{f' ({state})' if state else ''}\n  target: default\n"
        "  icmp-block-inversion: no\n  interfaces: \n"
        f"  sources: {sources}\n  services: {services}\n  ports: {ports}\n"
        "  protocols: \n  forward: no\n  masquerade: no\n"
    )


TEST166_PORTS = (
    "2181/tcp 2888/tcp 3888/tcp 5050/tcp 5051/tcp 31000-32000/tcp 32768-60999/tcp 8443/tcp 4443/tcp"
)


def _firewall(default: str, *zones: Result, rc: int = 0) -> plugin.Probe:
    """A node whose firewalld answers the specs' one command with these zones."""
    listing = "\n".join(zone.stdout for zone in zones)
    answer = Result(f"{default}\n{listing}", rc) if rc == 0 else Result("", rc, default)
    return plugin.Probe(CannedHost({plugin._FIREWALL: answer}))


OTHER_ZONES = (_info("block", "", "", "", ""), _info("public", "", "", "dhcpv6-client", ""))


def _zone_seen(loaded: LoadedConfig, probe: plugin.Probe) -> tuple[object, object, bool]:
    facts = ClusterFacts.of(loaded)
    [zone] = node_contract(loaded, facts.cluster.nodes[0], facts).zones
    seen: Seen = []
    node_specs.test_firewall_zone(probe, zone, _checker(seen))
    [(what, expected, found, passed)] = seen
    assert what == "firewall zone cluster-admin"
    return expected, found, passed


def test_the_zone_first_boot_made_passes(loaded: LoadedConfig) -> None:
    # firewalld lists ports in its own order: the spec compares them as a set
    ports = " ".join(reversed(TEST166_PORTS.split()))
    answer = _info("cluster-admin", "active", "10.86.255.0/24", "ssh", ports)
    expected, found, passed = _zone_seen(loaded, _firewall("public", *OTHER_ZONES, answer))
    assert passed, (expected, found)


@pytest.mark.parametrize(
    ("answer", "wrong"),
    [
        (_info("cluster-admin", "active", "", "ssh", TEST166_PORTS), "sources: -"),
        (_info("cluster-admin", "active", "0.0.0.0/0", "ssh", TEST166_PORTS), "0.0.0.0/0"),
        (_info("cluster-admin", "active", "10.86.255.0/24", "", TEST166_PORTS), "services: -"),
        (
            _info("cluster-admin", "active", "10.86.255.0/24", "ssh", TEST166_PORTS + " 9090/tcp"),
            "9090/tcp",
        ),
        (_info("cluster-admin", "", "10.86.255.0/24", "ssh", TEST166_PORTS), "inactive"),
        (None, "no such zone"),
        (Result("FirewallD is not running\n", 252), "firewalld does not answer: FirewallD"),
    ],
    ids=["no-source", "open-to-all", "no-ssh", "extra-port", "inactive", "no-zone", "not-running"],
)
def test_a_broken_zone_fails(loaded: LoadedConfig, answer: Result | None, wrong: str) -> None:
    if answer is None:  # firewalld runs, without the zone
        probe = _firewall("public", *OTHER_ZONES)
    elif answer.rc:
        probe = _firewall(answer.stdout, rc=answer.rc)
    else:
        probe = _firewall("public", *OTHER_ZONES, answer)
    _, found, passed = _zone_seen(loaded, probe)
    assert not passed
    assert wrong in str(found), found


def _default_seen(loaded: LoadedConfig, probe: plugin.Probe) -> tuple[object, bool]:
    facts = ClusterFacts.of(loaded)
    contract = node_contract(loaded, facts.cluster.nodes[1], facts)
    seen: Seen = []
    node_specs.test_firewall_default_zone(probe, contract, _checker(seen))
    [(what, expected, found, passed)] = seen
    assert (what, expected) == (
        "firewall default zone",
        "public: services: dhcpv6-client; ports: -",
    )
    return found, passed


def test_the_emptied_default_zone_passes(loaded: LoadedConfig) -> None:
    public = _info("public", "default, active", "", "dhcpv6-client", "")
    assert _default_seen(loaded, _firewall("public", OTHER_ZONES[0], public))[1]


@pytest.mark.parametrize(
    ("default", "services", "ports"),
    [
        ("public", "ssh dhcpv6-client", ""),  # the image's zone: first boot never reloaded
        ("public", "dhcpv6-client", "8080/tcp"),
        ("trusted", "dhcpv6-client", ""),  # everything lands where all is accepted
    ],
    ids=["image-zone-kept", "port-left-open", "other-default"],
)
def test_a_default_zone_that_opens_more_fails(
    loaded: LoadedConfig, default: str, services: str, ports: str
) -> None:
    zone = _info(default, "default", "", services, ports)
    found, passed = _default_seen(loaded, _firewall(default, OTHER_ZONES[0], zone))
    assert not passed, found


def test_firewalld_not_answering_fails_the_default_zone(loaded: LoadedConfig) -> None:
    found, passed = _default_seen(loaded, _firewall("FirewallD is not running", rc=252))
    assert not passed
    assert found == "firewalld does not answer: FirewallD is not running"


@dataclass
class ShellHost:
    """Runs the specs' commands in a local shell with `env` (the fakes on its PATH), the
    arguments quoted as testinfra quotes them."""

    env: dict[str, str]

    def run(self, command: str, *args: str) -> Result:
        line = command % tuple(shlex.quote(a) for a in args) if args else command
        done = subprocess.run(
            ["sh", "-c", line], env=self.env, capture_output=True, text=True, check=False
        )
        return Result(done.stdout, done.returncode, done.stderr)


PUBLIC_LISTING = "public (default, active)\n  services: dhcpv6-client\n  ports: \n"


@pytest.mark.parametrize(
    ("failures", "answered", "firewall_calls", "sleeps"),
    [(0, True, 2, 0), (3, True, 5, 3), (6, False, 6, 6)],
)
def test_the_running_firewall_is_asked_again(
    tmp_path: Path, failures: int, answered: bool, firewall_calls: int, sleeps: int
) -> None:
    """firewall-cmd giving up while firewalld is slow to answer D-Bus: verify asks again,
    six times 5 s apart, and when it never answers says so with firewall-cmd's line."""
    env = fake_firewall_cmd(
        tmp_path,
        failures,
        {"--get-default-zone": "public", "--list-all-zones": PUBLIC_LISTING},
    )
    probe = plugin.Probe(ShellHost(env))
    firewall = probe.firewall()
    assert (firewall is not None) == answered
    if firewall is not None:
        assert firewall.default == "public"
        assert firewall.zones["public"]["state"] == "default, active"
        assert probe.firewall_error == ""
    else:
        assert probe.firewall_error == NOT_RUNNING
    assert len(recorded(tmp_path, "calls")) == firewall_calls
    assert recorded(tmp_path, "sleeps") == ["5"] * sleeps


DEBIAN_PUBLIC = """<?xml version="1.0" encoding="utf-8"?>
<zone>
  <short>Public</short>
  <description>For use in public areas.</description>
  <service name="ssh"/>
  <service name="dhcpv6-client"/>
  <forward/>
</zone>
"""


def _image_seen(loaded: LoadedConfig, zone_file: str | None, package_file: str | None) -> Seen:
    contract = image_contract(loaded, compose(loaded, ("master",)))
    answers = {"cat -- /etc/firewalld/firewalld.conf": Result("DefaultZone=public\n")}
    if zone_file is not None:
        answers["cat -- /etc/firewalld/zones/public.xml"] = Result(zone_file)
    if package_file is not None:
        answers["cat -- /usr/lib/firewalld/zones/public.xml"] = Result(package_file)
    seen: Seen = []
    image_specs.test_firewall_opens_only_ssh(CannedHost(answers), contract, _checker(seen))
    return seen


def test_an_image_opening_only_ssh_passes(loaded: LoadedConfig) -> None:
    [(_, _, _, passed)] = _image_seen(loaded, DEBIAN_PUBLIC, None)
    assert passed
    # nothing changed the zone: the package's own file is the config
    [(_, _, _, passed)] = _image_seen(loaded, None, DEBIAN_PUBLIC)
    assert passed


@pytest.mark.parametrize(
    "zone_file",
    [
        DEBIAN_PUBLIC.replace("<forward/>", '<port protocol="tcp" port="8080"/>'),
        DEBIAN_PUBLIC.replace('<service name="ssh"/>\n', ""),
        DEBIAN_PUBLIC.replace("<forward/>", '<service name="http"/>'),
    ],
    ids=["a-port-open", "no-ssh", "another-service"],
)
def test_an_image_opening_more_or_less_fails(loaded: LoadedConfig, zone_file: str) -> None:
    [(what, expected, found, passed)] = _image_seen(loaded, zone_file, None)
    assert what == "firewall default zone public before first boot"
    assert expected == "services: dhcpv6-client ssh; ports: -"
    assert not passed, found


SECRET_PATH = "/etc/builder/secrets/agent_secret"
OTHER_SECRET = "/etc/builder/secrets/http_password"
SECRET_DIGEST = SecretFile.of(SECRET_PATH, "the content\n").digest
SECRET_SUM = hashlib.sha256(b"the content\n").hexdigest()


@pytest.mark.parametrize(
    ("answer", "passed"),
    [
        (Result(f"= {SECRET_PATH} 600 root:root {SECRET_SUM}\n"), True),
        (Result(f"= {SECRET_PATH} 644 root:root {SECRET_SUM}\n"), False),  # every user reads it
        (Result(f"= {SECRET_PATH} 600 centos:centos {SECRET_SUM}\n"), False),
        (Result(f"= {SECRET_PATH} 600 root:root {'0' * 64}\n"), False),  # not the seed's
        (Result(f"= {OTHER_SECRET} 600 root:root {SECRET_SUM}\n"), False),  # never written
    ],
    ids=["root-only", "world-readable", "not-roots", "other-content", "missing"],
)
def test_a_secret_file_must_be_roots_alone(
    loaded: LoadedConfig, answer: Result, passed: bool
) -> None:
    facts = ClusterFacts.of(loaded)
    secret = SecretFile(SECRET_PATH, SECRET_DIGEST)
    other = SecretFile(OTHER_SECRET, SECRET_DIGEST)
    contract = node_contract(loaded, facts.cluster.nodes[1], facts)
    contract = dataclasses.replace(contract, secret_files=(other, secret))
    paths = f"{shlex.quote(OTHER_SECRET)} {shlex.quote(SECRET_PATH)}"
    probe = plugin.Probe(CannedHost({plugin._FILE_DIGESTS.replace("PATHS", paths): answer}))
    seen: Seen = []
    node_specs.test_secret_file_root_only(probe, contract, secret, _checker(seen))
    [(what, expected, found, ok)] = seen
    assert (what, expected) == (
        f"{SECRET_PATH} mode, owner, digest",
        f"600 root:root {SECRET_DIGEST}",
    )
    assert ok == passed, found
    assert "the content" not in f"{expected} {found}"


API = HttpApi("mesos-master", "http://10.86.255.166:5050/master/flags", "mesos-master-readonly")


@pytest.mark.parametrize(
    ("answer", "passed"),
    [
        (Result('HTTP/1.1 401\nWWW-Authenticate: Basic realm="mesos-master-readonly"\n'), True),
        (Result("HTTP/1.1 200\n"), False),  # open to anyone
        (Result('HTTP/1.1 401\nWWW-Authenticate: Basic realm="other"\n'), False),
        (Result("", 1), False),  # no answer at all
    ],
    ids=["asks", "open", "other-realm", "no-answer"],
)
def test_an_api_must_ask_strangers_for_credentials(answer: Result, passed: bool) -> None:
    host = CannedHost({f"sh -c {plugin._STATUS} {API.url} ": answer})  # no CA: plain HTTP
    seen: Seen = []
    node_specs.test_api_requires_authentication(plugin.Probe(host), API, _checker(seen))
    [(what, expected, _found, ok)] = seen
    assert (what, expected) == (
        f"{API.url} without credentials",
        '401 Basic realm="mesos-master-readonly"',
    )
    assert ok == passed


def test_the_contract_checks_secret_files_by_digest(config_copy: Path) -> None:
    loaded = load_config(config_copy)
    facts = ClusterFacts.of(loaded)
    node = loaded.config.cluster.nodes[1]
    with pytest.raises(UserError, match="no secrets"):
        node_contract(loaded, node, facts)
    write_secrets(config_copy, rotate=False)
    secrets = load_secrets(config_copy)
    assert secrets is not None
    # before a seed issued the node's certificates, verify expects none it could know
    not_kept = [f for f in node_contract(loaded, node, facts).secret_files if "/tls/" in f.path]
    assert {f.digest for f in not_kept} == {NOT_KEPT}
    assert len(not_kept) == 5
    files = secret_files(facts, node, secrets)
    shared = shared_tls_files(facts, node, secrets)
    contract = node_contract(loaded, node, facts)
    assert contract.secret_files == tuple(
        [SecretFile.of(path, content) for path, content in files.items()]
        + [SecretFile.of(path, content, "644") for path, content in shared.items()]
    )
    # the node's key root's; its certificate and the executors' key and certificate anyone's
    assert {f.path: f.mode for f in contract.secret_files if "/tls/" in f.path} == {
        "/etc/builder/tls/node.key": "600",
        "/etc/builder/tls/node.crt": "644",
        "/etc/builder/tls/executor.crt": "644",
        "/etc/builder/tls/executor.key": "644",
        "/etc/builder/tls/agent-ca.crt": "644",
    }
    # test167, an agent: its own secrets only
    assert set(secrets.node_files(ROLE_SECRETS["slave"])) < {f.path for f in contract.secret_files}
    # over TLS (libprocess SSL), asked by the node's name
    assert [api.url for api in contract.apis] == ["https://test167:5051/state"]
    # the contract (and so every verify report) holds paths and digests, never a value
    assert not any(value in repr(contract) for value in secrets.values.values())
    assert contract.slave_zk_url == "zk://test166:2181/mesos"  # an agent's is plain


def test_a_lab_contract_has_no_authentication(config_copy: Path) -> None:
    cluster = config_copy / "cluster.yaml"
    cluster.write_text(cluster.read_text() + "security: none\n")
    loaded = load_config(config_copy)
    node = loaded.config.cluster.nodes[0]
    contract = node_contract(loaded, node, ClusterFacts.of(loaded))
    assert (contract.secret_files, contract.apis, contract.login) == ((), (), None)
    assert contract.master is not None
    assert contract.master.zk_url == "zk://test166:2181/mesos"


def test_plain_http_is_in_the_contract_of_a_secured_master_only(
    secured_copy: Path, config_copy: Path
) -> None:
    loaded = load_config(secured_copy)
    facts = ClusterFacts.of(loaded)
    master, agent = loaded.config.cluster.nodes
    assert node_contract(loaded, master, facts).plain_http == (
        PlainHttp("marathon", 8080, ()),
        PlainHttp("chronos", 4400, ("127.0.0.1",)),
    )
    assert node_contract(loaded, agent, facts).plain_http == ()
    cluster = secured_copy / "cluster.yaml"
    cluster.write_text(cluster.read_text() + "security: none\n")
    lab = load_config(secured_copy)
    assert node_contract(lab, master, ClusterFacts.of(lab)).plain_http == ()


@dataclass
class Sockets:
    """A host whose listening sockets are these (as testinfra lists them)."""

    listening: list[str]

    @property
    def socket(self) -> Any:
        return SimpleNamespace(get_listening_sockets=lambda: self.listening)


@pytest.mark.parametrize(
    ("plain_http", "sockets", "passed"),
    [
        (PlainHttp("marathon", 8080, ()), ["tcp://0.0.0.0:8443", "tcp://0.0.0.0:18080"], True),
        (PlainHttp("marathon", 8080, ()), ["tcp://0.0.0.0:8443", "tcp://:::8080"], False),
        (PlainHttp("marathon", 8080, ()), ["tcp://10.86.255.166:8080"], False),
        (PlainHttp("chronos", 4400, ("127.0.0.1",)), ["tcp://127.0.0.1:4400"], True),
        (PlainHttp("chronos", 4400, ("127.0.0.1",)), ["tcp://0.0.0.0:4400"], False),
        (PlainHttp("chronos", 4400, ("127.0.0.1",)), ["tcp://127.0.0.1:4443"], False),
        (
            PlainHttp("chronos", 4400, ("127.0.0.1",)),
            ["tcp://127.0.0.1:4400", "tcp://10.86.255.166:4400"],
            False,
        ),
    ],
    ids=["off", "on-any-v6", "on-the-address", "loopback", "on-any", "not-at-all", "also-out"],
)
def test_plain_http_must_listen_only_where_allowed(
    plain_http: PlainHttp, sockets: list[str], passed: bool
) -> None:
    seen: Seen = []
    node_specs.test_plain_http_only_where_allowed(
        plugin.Probe(Sockets(sockets)), plain_http, _checker(seen)
    )
    [(what, _expected, _found, ok)] = seen
    assert what.startswith(f"{plain_http.service}'s plain HTTP on TCP {plain_http.port}")
    assert ok == passed


CREATORS = "digest:mesos 31, world:anyone 1"


@pytest.mark.parametrize(
    ("answer", "passed"),
    [
        (Result(f"path {CREATORS}\nleader {CREATORS}\n"), (True, True)),
        # anyone may add a contender under the path, or rewrite the leader's record
        (Result(f"path world:anyone 31\nleader {CREATORS}\n"), (False, True)),
        (Result(f"path {CREATORS}\nleader world:anyone 31\n"), (True, False)),
        # agents and frameworks could not read the leader's record
        (Result(f"path {CREATORS}\nleader digest:mesos 31\n"), (True, False)),
        (Result(f"path {CREATORS}\nleader no json.info_ znode under /mesos\n"), (True, False)),
        (
            Result("path error -101 reading the ACL of /mesos\nleader error -101 listing /mesos\n"),
            (False, False),
        ),
        (Result("", 1), (False, False)),
    ],
    ids=[
        "creator-all-world-read",
        "open-path",
        "open-leader",
        "unreadable",
        "no-leader",
        "no-path",
        "no-answer",
    ],
)
def test_the_masters_znodes_must_be_the_creators(
    loaded: LoadedConfig, answer: Result, passed: tuple[bool, bool]
) -> None:
    test166 = loaded.config.cluster.nodes[0]
    contract = node_contract(loaded, test166, ClusterFacts.of(loaded))
    command = f"sh -c {plugin._RUN_PYTHON} {plugin._ZK_ACLS} 10.86.255.166 2181 /mesos"
    host = CannedHost({command: answer})
    seen: Seen = []
    master_specs.test_mesos_znode_acls(plugin.Probe(host), contract, _checker(seen))
    master_specs.test_mesos_leader_znode_acl(plugin.Probe(host), contract, _checker(seen))
    assert [(what, expected) for what, expected, _found, _ok in seen] == [
        ("/mesos znode ACL", CREATORS),
        ("/mesos leader znode ACL", CREATORS),
    ]
    assert tuple(ok for *_, ok in seen) == passed


def test_a_labs_znodes_are_open(config_copy: Path) -> None:
    cluster = config_copy / "cluster.yaml"
    cluster.write_text(cluster.read_text() + "security: none\n")
    loaded = load_config(config_copy)
    contract = node_contract(loaded, loaded.config.cluster.nodes[0], ClusterFacts.of(loaded))
    assert contract.master is not None
    assert contract.master.znode_acl == ("world:anyone 31",)


def test_marathon_info_as_first_boot_configures_it_passes(loaded: LoadedConfig) -> None:
    """Marathon's --master as the seed writes it (no credentials: it only reads the leader's
    record) and its --zk with the digest user's, shown redacted."""
    test166 = loaded.config.cluster.nodes[0]
    facts = ClusterFacts.of(loaded)
    contract = node_contract(loaded, test166, facts)
    assert contract.login is not None
    marathon = secret_files(facts, test166, SAMPLE_SECRETS)["/etc/default/marathon"]
    assert isinstance(marathon, str)
    defaults = dict(line.split("=", 1) for line in marathon.split())
    # over HTTPS, trusting the cluster CA's certificate on the node
    url = "https://10.86.255.166:8443/v2/info"
    fetch = plugin._FETCH.replace("%s", "30", 1).replace("%%", "%")
    login = f"{contract.login.user} {contract.login.password_file}"
    command = f"sh -c {fetch} {url} {login} /etc/builder/tls/ca.crt"

    def seen_with(master: str, zk: str = defaults["MARATHON_ZK"]) -> tuple[object, object, bool]:
        body = {"marathon_config": {"master": master}, "zookeeper_config": {"zk": zk}}
        host = CannedHost({command: Result(json.dumps(body))})
        seen: Seen = []
        master_specs.test_marathon_info(
            plugin.Probe(host, contract.login, contract.ca_file), contract, _checker(seen)
        )
        [(_, expected, found, ok)] = seen
        assert SAMPLE_SECRETS.values["zookeeper_password"] not in f"{expected} {found}"
        return expected, found, ok

    assert seen_with(defaults["MARATHON_MASTER"])[2]
    assert not seen_with("zk://elsewhere:2181/mesos")[2]
    # Marathon 1.5 shows the zk URL without its credentials, 1.7+ masks them: both pass
    plain = "zk://test166:2181/marathon"
    assert seen_with(defaults["MARATHON_MASTER"], plain) == (
        ("zk://test166:2181/mesos", plain),
        ("zk://test166:2181/mesos", plain),
        True,
    )
    assert seen_with(defaults["MARATHON_MASTER"], "zk://xxxxxxxx:xxxxxxxx@test166:2181/marathon")[2]
    assert not seen_with(defaults["MARATHON_MASTER"], "zk://test166:2181/chronos")[2]
    # a master URL that carries a password (not what the seed writes) is not shown with it
    secret = SAMPLE_SECRETS.values["zookeeper_password"]
    assert not seen_with(f"zk://mesos:{secret}@elsewhere:2181/mesos")[2]


@pytest.mark.parametrize(
    ("secured", "reported", "passed"),
    [
        (True, dict.fromkeys(MASTER_AUTH_FLAGS, "true"), True),
        (True, dict.fromkeys(MASTER_AUTH_FLAGS, "true") | {"authenticate_agents": "false"}, False),
        (True, {}, False),
        (False, dict.fromkeys(MASTER_AUTH_FLAGS, "false"), True),
        (False, {"authenticate_http_readonly": "true"}, False),
    ],
    ids=["secured", "agents-unauthenticated", "flags-left-out", "lab", "lab-half-secured"],
)
def test_the_masters_authentication_flags(
    loaded: LoadedConfig, config_copy: Path, secured: bool, reported: dict[str, str], passed: bool
) -> None:
    """The running master's own /master/flags say it authenticates agents, frameworks and
    every HTTP request (a lab's say it does not)."""
    if not secured:
        cluster = config_copy / "cluster.yaml"
        cluster.write_text("security: none\n" + cluster.read_text())
        loaded = load_config(config_copy)
    test166 = loaded.config.cluster.nodes[0]
    contract = node_contract(loaded, test166, ClusterFacts.of(loaded))
    assert contract.master is not None
    # a secured master's API speaks TLS (libprocess SSL), checked against the CA
    url = f"{'https' if secured else 'http'}://10.86.255.166:5050/master/flags"
    fetch = plugin._FETCH.replace("%s", "30", 1).replace("%%", "%")
    login = contract.login
    user, password_file = (login.user, login.password_file) if login else ("", "")
    ca_file = contract.ca_file or ""
    command = f"sh -c {fetch} {url} {user} {password_file} {ca_file}"
    flags = {"zk": "zk://test166:2181/mesos", "quorum": "1"} | reported
    host = CannedHost({command: Result(json.dumps({"flags": flags}))})
    seen: Seen = []
    master_specs.test_mesos_master_flags(
        plugin.Probe(host, login, contract.ca_file), contract, _checker(seen)
    )
    [(_, expected, found, ok)] = [entry for entry in seen if "authentication" in entry[0]]
    assert ok is passed, (expected, found)


@pytest.mark.parametrize(
    ("line", "found", "passed"),
    [
        ("= zookeeper.service|enabled|active", "enabled, active", True),
        ("= zookeeper.service|disabled|active", "disabled, active", False),
        ("= zookeeper.service|enabled|failed", "enabled, failed", False),
        ("= zookeeper.service||inactive", "inactive", False),  # no such unit file
        ("= docker.service|enabled|active", "unknown", False),  # not asked about
    ],
    ids=["running", "not-enabled", "failed", "no-unit", "no-answer"],
)
def test_a_service_must_be_enabled_and_running(
    loaded: LoadedConfig, line: str, found: str, passed: bool
) -> None:
    facts = ClusterFacts.of(loaded)
    contract = dataclasses.replace(
        node_contract(loaded, facts.cluster.nodes[1], facts), services=("mesos-slave", "zookeeper")
    )
    command = plugin._UNITS.replace("UNITS", "mesos-slave.service zookeeper.service")
    probe = plugin.Probe(
        CannedHost({command: Result(f"= mesos-slave.service|enabled|active\n{line}\n")})
    )
    seen: Seen = []
    node_specs.test_service_enabled_and_running(probe, contract, "zookeeper", _checker(seen))
    assert seen == [("unit zookeeper", "enabled, active", found, passed)]


LOGIN = "Basic " + base64.b64encode(b"admin:the-password").decode()


def _tls_server(directory: Path, ca: tls.ClusterCA) -> ThreadingHTTPServer:
    """A secured API on loopback (401 and its realm without the login, 200 with it) with a
    certificate from `ca` for test166 and 127.0.0.1, as first boot gives a master's
    Marathon."""
    node = tls.issue_node_certificate(
        ca, names=["test166"], addresses=["127.0.0.1"], keystore_password="x" * 16
    )
    pem = directory / "node.pem"
    pem.write_text(node.key_pem + node.cert_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pem)

    class Asks(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.headers.get("Authorization") == LOGIN:
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
                return
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="Mesosphere"')
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Asks)
    server.socket = context.wrap_socket(
        server.socket, server_side=True, do_handshake_on_connect=False
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _only(directory: Path, env: dict[str, str], tools: tuple[str, ...]) -> dict[str, str]:
    """`env` with a PATH of its fakes and these tools alone (a node with curl and no
    python3, as CentOS 7, or the other way round)."""
    directory.mkdir()
    for tool in tools:
        # python3: the interpreter itself (a PATH entry may be a wrapper script, pyenv's)
        found = str(Path(sys.executable).resolve()) if tool == "python3" else shutil.which(tool)
        assert found is not None, tool
        (directory / tool).symlink_to(found)
    fakes = env["PATH"].split(":")[0]
    return {**env, "PATH": f"{fakes}:{directory}"}


@pytest.mark.parametrize("client", ["curl", "python3"])
def test_an_https_api_must_show_the_cluster_cas_certificate_for_its_name(
    tmp_path: Path, client: str
) -> None:
    """The node's checks over TLS (curl as on CentOS 7, or python3 where curl is missing,
    run here in a shell) trust only the CA file on the node and check the URL's name or
    address against the certificate: the API's answer counts only then. Shown failing with
    another CA's file and a name the certificate does not carry; the same for the checks
    that log in."""
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    ours.mkdir()
    theirs.mkdir()
    ca = tls.write_ca(ours, tls.make_ca())
    other = tls.write_ca(theirs, tls.make_ca())
    server = _tls_server(tmp_path, ca)
    env = fake_firewall_cmd(tmp_path, 0, {})  # its PATH: a `sleep` that returns at once
    env = _only(tmp_path / "tools", env, ("sh", "seq", "tr", "grep", "cat", "printf", client))
    password_file = tmp_path / "http_password"
    password_file.write_text("the-password\n")
    login = HttpLogin("admin", str(password_file))
    port = server.server_address[1]
    try:
        for ca_file, host, passed in (
            (ca.cert_path, "127.0.0.1", True),  # the certificate's address
            (other.cert_path, "127.0.0.1", False),  # another CA's certificate
            (ca.cert_path, "localhost", False),  # a name the certificate does not carry
        ):
            api = HttpApi("marathon", f"https://{host}:{port}/v2/info", "Mesosphere")
            seen: Seen = []
            probe = plugin.Probe(ShellHost(env), login, str(ca_file))
            node_specs.test_api_requires_authentication(probe, api, _checker(seen))
            [(_, _, found, ok)] = seen
            assert ok is passed, (ca_file, host, found)
            # the checks that log in (the password read from its file on the node)
            assert probe.http(api.url, attempts=2) == ("ok" if passed else None), (ca_file, host)
    finally:
        server.shutdown()
        server.server_close()
