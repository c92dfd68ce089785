"""First-boot seeds: what each node gets, golden files, the ISO read back, inventory errors.

Regenerate the golden seeds with:
    ./run.sh test tests/unit/firstboot/test_seed.py --regen-golden
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from builder.config.cluster import ClusterFacts
from builder.config.load import LoadedConfig, load_config
from builder.firstboot.seed import (
    META_DATA,
    NETWORK_CONFIG,
    RELOAD_FIREWALL,
    SECRET_PERMISSIONS,
    USER_DATA,
    SeedFormat,
    node_files,
    node_seed,
    secret_files,
    write_seeds,
)
from tests.conftest import (
    REPO,
    SAMPLE_SECRETS,
    CliRun,
    generated_cluster_yaml,
    require_tool,
    write_sample_secrets,
)
from tests.fake_firewalld import calls as recorded
from tests.fake_firewalld import fake_firewall_cmd

GOLDEN = REPO / "tests" / "golden" / "seeds"
THREE_MASTERS = REPO / "tests" / "fixtures" / "clusters" / "three-masters.yaml"


@pytest.fixture
def ha(config_copy: Path) -> LoadedConfig:
    shutil.copy(THREE_MASTERS, config_copy / "cluster.yaml")
    write_sample_secrets(config_copy)
    return load_config(config_copy)


def _files(loaded: LoadedConfig, hostname: str) -> dict[str, str]:
    """Every text file first boot writes on the node: the plain ones, then those with a
    secret (the keystore, binary, is test_a_secured_master_serves_https')."""
    node = next(n for n in loaded.config.cluster.nodes if n.hostname == hostname)
    facts = ClusterFacts.of(loaded)
    secret = secret_files(facts, node, SAMPLE_SECRETS)
    return node_files(facts, node) | {p: c for p, c in secret.items() if isinstance(c, str)}


ZK_PASSWORD = SAMPLE_SECRETS.values["zookeeper_password"]
MARATHON_ZK_PASSWORD = SAMPLE_SECRETS.values["marathon_zookeeper_password"]
ZK_URL_FILE = "/etc/builder/credentials/mesos-zk.url"
HTTP_PASSWORD = SAMPLE_SECRETS.values["http_password"]
AGENT_SECRET = SAMPLE_SECRETS.values["agent_secret"]
MARATHON_SECRET = SAMPLE_SECRETS.values["marathon_secret"]
CHRONOS_SECRET = SAMPLE_SECRETS.values["chronos_secret"]
KEYSTORE_PASSWORD = SAMPLE_SECRETS.values["keystore_password"]


def test_default_cluster_first_boot_files(loaded: LoadedConfig) -> None:
    test166 = _files(loaded, "test166")
    # the init wrapper puts /etc/mesos/zk on Mesos' command line: it names a root-only file
    assert test166["/etc/mesos/zk"] == f"file://{ZK_URL_FILE}\n"
    assert test166[ZK_URL_FILE] == f"zk://mesos:{ZK_PASSWORD}@test166:2181/mesos"
    assert test166["/etc/hosts"].endswith("localdomain6\n10.86.255.166 test166\n")
    assert test166["/etc/mesos-master/quorum"] == "1\n"
    assert test166["/var/lib/zookeeper/myid"] == "1\n"
    assert test166["/etc/zookeeper/conf/zoo.cfg"].endswith("server.1=test166:2888:3888\n")
    assert test166["/etc/default/marathon"].startswith(
        "MARATHON_MASTER=zk://test166:2181/mesos\n"
        f"MARATHON_ZK=zk://marathon:{MARATHON_ZK_PASSWORD}@test166:2181/marathon\n"
    )
    assert test166["/etc/mesos-slave/ip"] == "10.86.255.166\n"
    test167 = _files(loaded, "test167")
    assert "/etc/mesos-master/quorum" not in test167
    assert test167["/etc/mesos-slave/hostname"] == "test167\n"


def test_three_masters_form_an_ensemble(ha: LoadedConfig) -> None:
    zk = f"zk://mesos:{ZK_PASSWORD}@m1:2181,m2:2181,m3:2181/mesos"
    for number, name in enumerate(["m1", "m2", "m3"], start=1):
        files = _files(ha, name)
        assert files["/etc/mesos/zk"] == f"file://{ZK_URL_FILE}\n"
        assert files[ZK_URL_FILE] == zk
        assert files["/etc/mesos-master/quorum"] == "2\n"
        assert files["/var/lib/zookeeper/myid"] == f"{number}\n"
        assert files["/etc/zookeeper/conf/zoo.cfg"].endswith(
            "server.1=m1:2888:3888\nserver.2=m2:2888:3888\nserver.3=m3:2888:3888\n"
        )
        assert (
            f"MARATHON_ZK=zk://marathon:{MARATHON_ZK_PASSWORD}@m1:2181,m2:2181,m3:2181/marathon\n"
            in files["/etc/default/marathon"]
        )
        assert files["/etc/chronos/conf/zk_hosts"] == "m1:2181,m2:2181,m3:2181\n"
        assert files["/etc/mesos-master/hostname"] == f"{name}.mesos.example\n"
    s1 = _files(ha, "s1")
    assert s1["/etc/mesos-slave/attributes/rack"] == "r1\n"
    assert s1["/etc/mesos-slave/resources/ports"] == "[31000-32000]\n"
    assert s1["/etc/hosts"].endswith("m3\n192.168.50.21 s1.mesos.example s1\n")
    assert "s2" not in s1["/etc/hosts"]


LIBPROCESS_SSL = [
    "LIBPROCESS_SSL_ENABLED=true",
    "LIBPROCESS_SSL_SUPPORT_DOWNGRADE=false",
    "LIBPROCESS_SSL_CERT_FILE=/etc/builder/tls/node.crt",
    "LIBPROCESS_SSL_KEY_FILE=/etc/builder/tls/node.key",
    "LIBPROCESS_SSL_CA_FILE=/etc/builder/tls/ca.crt",
    "LIBPROCESS_SSL_VERIFY_CERT=true",  # before Mesos 1.10 the only name
    "LIBPROCESS_SSL_VERIFY_SERVER_CERT=true",
    "LIBPROCESS_SSL_HOSTNAME_VALIDATION_SCHEME=openssl",
    "LIBPROCESS_SSL_VERIFY_IPADD=true",
    "LIBPROCESS_SSL_CIPHERS=ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384",
]


def test_a_secured_master_authenticates_everything(loaded: LoadedConfig) -> None:
    """The flags builder writes (Mesos 1.x, Marathon 1.5, Chronos 2.5 names) and the
    root-only files they name, each secret where its principal needs it."""
    test166 = _files(loaded, "test166")
    for flag in (
        "authenticate_agents",
        "authenticate_frameworks",
        "authenticate_http_readonly",
        "authenticate_http_readwrite",
    ):
        assert test166[f"/etc/mesos-master/?{flag}"] == ""
    credentials_file = "/etc/builder/credentials/mesos-master.json"
    assert test166["/etc/mesos-master/credentials"] == credentials_file + "\n"
    assert json.loads(test166[credentials_file]) == {
        "credentials": [
            {"principal": "agent", "secret": AGENT_SECRET},
            {"principal": "marathon", "secret": MARATHON_SECRET},
            {"principal": "chronos", "secret": CHRONOS_SECRET},
            {"principal": "admin", "secret": HTTP_PASSWORD},
        ]
    }
    marathon = test166["/etc/default/marathon"].splitlines()
    assert marathon[3:] == [
        "MARATHON_MESOS_AUTHENTICATION=",
        "MARATHON_MESOS_AUTHENTICATION_PRINCIPAL=marathon",
        "MARATHON_MESOS_AUTHENTICATION_SECRET_FILE=/etc/builder/credentials/marathon.secret",
        "MARATHON_HTTPS_PORT=8443",
        "MARATHON_DISABLE_HTTP=",
        # not MARATHON_HTTP_CREDENTIALS: the launcher would put it on the command line
        f"MESOSPHERE_HTTP_CREDENTIALS=admin:{HTTP_PASSWORD}",
        # nor MARATHON_SSL_KEYSTORE_PASSWORD
        "MESOSPHERE_KEYSTORE_PATH=/etc/builder/tls/node.p12",
        f"MESOSPHERE_KEYSTORE_PASS={KEYSTORE_PASSWORD}",
        # its scheduler driver reaches the masters over TLS (an EnvironmentFile: no export)
        *LIBPROCESS_SSL,
    ]
    # the frameworks read every byte of their secret file: no newline
    assert test166["/etc/builder/credentials/marathon.secret"] == MARATHON_SECRET
    assert test166["/etc/builder/credentials/chronos.secret"] == CHRONOS_SECRET
    assert test166["/etc/chronos/conf/mesos_authentication_principal"] == "chronos\n"
    # not a conf file: Chronos' launcher puts those on its command line
    assert "/etc/chronos/conf/http_credentials" not in test166
    assert test166["/etc/default/chronos"].splitlines() == [
        f"MESOSPHERE_HTTP_CREDENTIALS=admin:{HTTP_PASSWORD}",
        "MESOSPHERE_KEYSTORE_PATH=/etc/builder/tls/node.p12",
        f"MESOSPHERE_KEYSTORE_PASS={KEYSTORE_PASSWORD}",
        *LIBPROCESS_SSL,
    ]
    # Chronos reads the leader's record only (world-readable): no password in its master
    assert test166["/etc/chronos/conf/master"] == "zk://test166:2181/mesos\n"
    test167 = _files(loaded, "test167")
    assert test167["/etc/mesos-slave/credential"] == "/etc/builder/credentials/mesos-agent.json\n"
    assert json.loads(test167["/etc/builder/credentials/mesos-agent.json"]) == {
        "principal": "agent",
        "secret": AGENT_SECRET,
    }
    assert json.loads(test167["/etc/builder/credentials/mesos-agent-http.json"]) == {
        "credentials": [{"principal": "admin", "secret": HTTP_PASSWORD}]
    }
    assert test167["/etc/mesos-slave/?authenticate_http_readonly"] == ""
    assert not any(path.startswith("/etc/mesos-master") for path in test167)


def test_a_secured_master_serves_https(loaded: LoadedConfig, tmp_path: Path) -> None:
    """Marathon and Chronos over HTTPS with the node's keystore: issued by the cluster CA for
    the node's FQDN, host name and address, opened by the keystore password (openssl), and
    kept: a second seed is the same seed (its instance-id too). An agent alone holds none."""
    test166, test167 = loaded.config.cluster.nodes
    files = _files(loaded, "test166")
    assert files["/etc/chronos/conf/https_port"] == "4443\n"
    assert files["/etc/chronos/conf/http_address"] == "127.0.0.1\n"  # Chronos' plain HTTP
    document = YAML(typ="safe").load(node_seed(loaded, test166, secrets=SAMPLE_SECRETS).user_data)
    entries = {e["path"]: e for e in document["write_files"]}
    ca = entries["/etc/builder/tls/ca.crt"]
    assert SAMPLE_SECRETS.ca is not None
    assert (ca["content"], ca["permissions"]) == (SAMPLE_SECRETS.ca.cert_pem, "0644")
    keystore = entries["/etc/builder/tls/node.p12"]
    assert (keystore["encoding"], keystore["permissions"]) == ("b64", SECRET_PERMISSIONS)
    (tmp_path / "node.p12").write_bytes(base64.b64decode(keystore["content"]))
    opened = subprocess.run(
        [
            "openssl",
            "pkcs12",
            "-in",
            str(tmp_path / "node.p12"),
            "-nokeys",
            "-clcerts",
            "-passin",
            "env:PASS",
        ],
        env={**os.environ, "PASS": KEYSTORE_PASSWORD},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    (tmp_path / "node.crt").write_text(opened)
    names = subprocess.run(
        ["openssl", "x509", "-in", str(tmp_path / "node.crt"), "-noout", "-ext", "subjectAltName"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "DNS:test166, IP Address:10.86.255.166" in names  # no domain: the name once
    subprocess.run(
        [
            "openssl",
            "verify",
            "-purpose",
            "sslserver",
            "-CAfile",
            str(SAMPLE_SECRETS.ca.cert_path),
            str(tmp_path / "node.crt"),
        ],
        check=True,
        capture_output=True,
    )
    again = node_seed(loaded, test166, secrets=SAMPLE_SECRETS)
    assert again.files == node_seed(loaded, test166, secrets=SAMPLE_SECRETS).files
    agent = node_seed(loaded, test167, secrets=SAMPLE_SECRETS).user_data
    assert "/etc/builder/tls/node.p12" not in agent
    assert KEYSTORE_PASSWORD not in agent


def test_every_secured_node_speaks_libprocess_ssl(loaded: LoadedConfig, tmp_path: Path) -> None:
    """Mesos' master and agent (libprocess SSL, from /etc/default/mesos, exported) with the
    node's certificate from the cluster CA and its root-only key; an agent's executors with
    a certificate and key of their own that every user reads, named in their environment,
    issued by the node's executors' CA, which only the agent trusts besides the cluster's.
    All for the node's names and address, and kept."""
    test166, test167 = loaded.config.cluster.nodes
    assert SAMPLE_SECRETS.ca is not None
    cluster_ca = SAMPLE_SECRETS.ca.cert_pem
    for node in (test166, test167):
        files = _files(loaded, node.hostname)
        agent_ssl = [line.replace("/ca.crt", "/agent-ca.crt") for line in LIBPROCESS_SSL]
        assert files["/etc/default/mesos"].splitlines() == [
            "LOGS=/var/log/mesos",
            'ULIMIT="-n 8192"',
            *(f"export {line}" for line in agent_ssl),
        ]
        document = YAML(typ="safe").load(node_seed(loaded, node, secrets=SAMPLE_SECRETS).user_data)
        entries = {e["path"]: e for e in document["write_files"]}
        modes = {path: entries[path]["permissions"] for path in entries if "/tls/" in path}
        expected = {
            "/etc/builder/tls/ca.crt": "0644",
            "/etc/builder/tls/agent-ca.crt": "0644",
            "/etc/builder/tls/node.crt": "0644",
            "/etc/builder/tls/node.key": SECRET_PERMISSIONS,
            "/etc/builder/tls/executor.crt": "0644",
            "/etc/builder/tls/executor.key": "0644",
        }
        if node is test166:
            expected["/etc/builder/tls/node.p12"] = SECRET_PERMISSIONS
        assert modes == expected
        executor = json.loads(files["/etc/mesos-slave/executor_environment_variables"])
        assert executor == {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            **dict(line.replace("/node.", "/executor.").split("=", 1) for line in LIBPROCESS_SSL),
        }
        content = {path: entry["content"] for path, entry in entries.items()}
        agent_ca = content["/etc/builder/tls/agent-ca.crt"]
        assert agent_ca.startswith(cluster_ca)
        assert agent_ca != cluster_ca
        (tmp_path / "cluster.crt").write_text(cluster_ca)
        (tmp_path / "executors.crt").write_text(agent_ca[len(cluster_ca) :])
        assert content["/etc/builder/tls/node.key"] != content["/etc/builder/tls/executor.key"]
        for name, trusted_by in (("node", "cluster"), ("executor", "executors")):
            cert = tmp_path / f"{name}.crt"
            cert.write_text(content[f"/etc/builder/tls/{name}.crt"])
            for anchor in ("cluster", "executors"):
                checked = subprocess.run(
                    ["openssl", "verify", "-purpose", "sslserver", "-CAfile",
                     str(tmp_path / f"{anchor}.crt"), str(cert)],
                    capture_output=True,
                    text=True,
                )  # fmt: skip
                # each verifies only against its own CA: no executors' key poses as a node
                assert (checked.returncode == 0) == (anchor == trusted_by), checked.stderr
            names = subprocess.run(
                ["openssl", "x509", "-in", str(cert), "-noout", "-ext", "subjectAltName"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            assert f"DNS:{node.hostname}, IP Address:{node.ip}" in names
        again = node_seed(loaded, node, secrets=SAMPLE_SECRETS)
        assert again.files == node_seed(loaded, node, secrets=SAMPLE_SECRETS).files


def test_a_master_alone_trusts_the_cluster_ca_only(ha: LoadedConfig) -> None:
    """No agent, so no executors: its Mesos trusts the cluster CA alone."""
    m1 = _files(ha, "m1")
    assert m1["/etc/default/mesos"].splitlines()[2:] == [f"export {x}" for x in LIBPROCESS_SSL]
    assert "/etc/mesos-slave/executor_environment_variables" not in m1
    s1 = _files(ha, "s1")
    assert (
        "export LIBPROCESS_SSL_CA_FILE=/etc/builder/tls/agent-ca.crt"
        in s1["/etc/default/mesos"].splitlines()
    )


def test_every_file_with_a_secret_is_root_only_and_no_other_file_has_one(
    loaded: LoadedConfig,
) -> None:
    values = list(SAMPLE_SECRETS.values.values())
    for node in loaded.config.cluster.nodes:
        document = YAML(typ="safe").load(node_seed(loaded, node, secrets=SAMPLE_SECRETS).user_data)
        holding = {
            e["path"]: e["permissions"]
            for e in document["write_files"]
            if any(value in e["content"] for value in values)
        }
        assert set(holding.values()) == {SECRET_PERMISSIONS}
        facts = ClusterFacts.of(loaded)
        root_only = {
            e["path"] for e in document["write_files"] if e["permissions"] == SECRET_PERMISSIONS
        }
        # and the node's key and keystore (secrets too, though of no secrets.yaml value)
        keys = {"/etc/builder/tls/node.p12", "/etc/builder/tls/node.key"}
        assert (set(holding) | (keys & root_only)) == root_only
        assert root_only == set(secret_files(facts, node, SAMPLE_SECRETS))
        assert not any(v in c for c in node_files(facts, node).values() for v in values)


def test_a_lab_without_security_writes_no_authentication(config_copy: Path) -> None:
    cluster = config_copy / "cluster.yaml"
    cluster.write_text(cluster.read_text() + "security: none\n")
    lab = load_config(config_copy)
    facts = ClusterFacts.of(lab)
    test166 = node_files(facts, lab.config.cluster.nodes[0])
    assert test166["/etc/mesos/zk"] == "zk://test166:2181/mesos\n"
    assert not any("authenticat" in path or "credential" in path for path in test166)
    assert "HTTP_CREDENTIALS" not in test166["/etc/default/marathon"]
    assert "/etc/default/chronos" not in test166
    # seedable without secrets
    seed = node_seed(lab, lab.config.cluster.nodes[0])
    assert "/etc/builder" not in seed.user_data


def test_seed_refuses_a_secured_cluster_without_secrets(
    builder_cli: CliRun, config_copy: Path, tmp_path: Path
) -> None:
    result = builder_cli("--config", str(config_copy), "seed", "--all", "--out", "s")
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        f"error: {config_copy}/secrets.yaml: no secrets, and cluster.yaml's security is "
        "authenticated (set `security: none` only for a lab)",
        f"hint: builder --config {config_copy} secrets init",
    ]
    assert not (tmp_path / "s").exists()


def test_seed_and_up_warn_about_a_lab_every_time(
    builder_cli: CliRun, config_copy: Path, tmp_path: Path
) -> None:
    cluster = config_copy / "cluster.yaml"
    cluster.write_text(cluster.read_text() + "security: none\n")
    warning = "warning: roles-config/cluster.yaml: security: none: no authentication anywhere"
    for _ in range(2):
        result = builder_cli("--config", str(config_copy), "seed", "--all", "--out", "s")
        assert result.returncode == 0, result.stderr
        assert result.stderr.startswith(warning), result.stderr
    up = builder_cli("--config", str(config_copy), "up", "--out", str(tmp_path / "none"))
    assert up.returncode == 2
    assert up.stderr.startswith(warning), up.stderr
    validate = builder_cli("--config", str(config_copy), "validate")
    assert warning not in validate.stderr


def test_units_start_in_order(loaded: LoadedConfig) -> None:
    yaml = YAML(typ="safe")
    test166 = yaml.load(
        node_seed(loaded, loaded.config.cluster.nodes[0], secrets=SAMPLE_SECRETS).user_data
    )
    starts = [cmd[2] for cmd in test166["runcmd"] if cmd[1] == "start"]
    assert starts == [
        "zookeeper.service",
        "mesos-master.service",
        "marathon.service",
        "chronos.service",
        "docker.service",
        "mesos-slave.service",
    ]
    test167 = yaml.load(
        node_seed(loaded, loaded.config.cluster.nodes[1], secrets=SAMPLE_SECRETS).user_data
    )
    assert test167["runcmd"][0] == RELOAD_FIREWALL  # before anything starts
    assert test167["runcmd"][1] == ["systemctl", "enable", "docker.service", "mesos-slave.service"]
    assert test167["hostname"] == "test167"


def test_static_network_config(ha: LoadedConfig) -> None:
    s2 = node_seed(ha, ha.config.cluster.nodes[4], secrets=SAMPLE_SECRETS)
    assert YAML(typ="safe").load(s2.files[NETWORK_CONFIG]) == {
        "version": 1,
        "config": [
            {
                "type": "physical",
                "name": "eth0",
                "mac_address": "52:54:00:00:50:22",
                "subnets": [
                    {
                        "type": "static",
                        "address": "192.168.50.22/24",
                        "gateway": "192.168.50.1",
                        "dns_nameservers": ["192.168.50.1"],
                        "dns_search": ["mesos.example"],
                    }
                ],
            }
        ],
    }
    assert (
        NETWORK_CONFIG
        not in node_seed(ha, ha.config.cluster.nodes[3], secrets=SAMPLE_SECRETS).files
    )


def test_instance_id_follows_the_content(loaded: LoadedConfig, ha: LoadedConfig) -> None:
    yaml = YAML(typ="safe")
    first = yaml.load(
        node_seed(loaded, loaded.config.cluster.nodes[1], secrets=SAMPLE_SECRETS).files[META_DATA]
    )
    again = yaml.load(
        node_seed(loaded, loaded.config.cluster.nodes[1], secrets=SAMPLE_SECRETS).files[META_DATA]
    )
    assert first == again
    assert first["local-hostname"] == "test167"
    assert first["instance-id"].startswith("test167-")


@pytest.mark.parametrize("cluster", ["default", "three-masters"])
def test_seeds_match_golden(
    cluster: str, loaded: LoadedConfig, ha: LoadedConfig, request: pytest.FixtureRequest
) -> None:
    config = loaded if cluster == "default" else ha
    for node in config.config.cluster.nodes:
        seed = node_seed(config, node, secrets=SAMPLE_SECRETS)
        golden = GOLDEN / cluster / node.hostname
        files = {name: without_tls_material(text) for name, text in seed.files.items()}
        if files[USER_DATA] != seed.user_data:
            files[META_DATA] = _INSTANCE_ID.sub(r"\1<digest of the user-data>", files[META_DATA])
        if request.config.getoption("--regen-golden"):
            shutil.rmtree(golden, ignore_errors=True)
            golden.mkdir(parents=True)
            for name, text in files.items():
                (golden / name).write_text(text)
        assert sorted(p.name for p in golden.iterdir()) == sorted(files)
        for name, text in files.items():
            assert (golden / name).read_text() == text


_PEM = re.compile(r"-----BEGIN ([A-Z ]+)-----\n(?:[ ]*[A-Za-z0-9+/=]+\n)+[ ]*-----END \1-----")
_BASE64_CONTENT = re.compile(r'(encoding: b64\n +content: )"?[A-Za-z0-9+/=]+"?')
_INSTANCE_ID = re.compile(r"(instance-id: [a-z0-9-]+-)[0-9a-f]{12}$", re.MULTILINE)


def without_tls_material(text: str) -> str:
    """A seed as its golden file shows it: the CA's and the node's certificates and keys
    and the node's keystore (new with every sample CA) as placeholders, and so the
    instance-id's digest where a seed carries them. Their content is checked in
    test_a_secured_master_serves_https and test_every_secured_node_speaks_libprocess_ssl."""
    if "BEGIN CERTIFICATE" not in text and "encoding: b64" not in text:
        return text
    text = _PEM.sub(r"<\1 made with the sample CA>", text)
    return _BASE64_CONTENT.sub(r"\1<PKCS#12 keystore issued by the sample CA>", text)


def test_without_tls_material_hides_only_tls_material() -> None:
    seed = "a: 1\ncontent: |\n  -----BEGIN CERTIFICATE-----\n  QUJD\n  -----END CERTIFICATE-----\n"
    assert (
        without_tls_material(seed) == "a: 1\ncontent: |\n  <CERTIFICATE made with the sample CA>\n"
    )
    assert without_tls_material("a: 1\n") == "a: 1\n"


def test_iso_reads_back_identical_to_dir(ha: LoadedConfig, tmp_path: Path) -> None:
    xorriso = require_tool("xorriso")
    blkid = require_tool("blkid")
    nodes = list(ha.config.cluster.nodes)
    write_seeds(ha, nodes, tmp_path / "iso", SeedFormat.ISO)
    write_seeds(ha, nodes, tmp_path / "dir", SeedFormat.DIR)
    for node in nodes:
        iso = tmp_path / "iso" / f"{node.hostname}-cidata.iso"
        label = subprocess.run(
            [blkid, "-o", "value", "-s", "LABEL", str(iso)],
            capture_output=True,
            text=True,
            check=True,
        )
        assert label.stdout.strip() == "cidata"
        extracted = tmp_path / "extracted" / node.hostname
        subprocess.run(
            [xorriso, "-osirrox", "on", "-indev", str(iso), "-extract", "/", str(extracted)],
            capture_output=True,
            check=True,
        )
        expected = tmp_path / "dir" / node.hostname
        names = sorted(p.name for p in expected.iterdir())
        assert sorted(p.name for p in extracted.iterdir()) == names
        assert USER_DATA in names
        for name in names:
            assert (extracted / name).read_bytes() == (expected / name).read_bytes()


def test_seed_cli_formats(builder_cli: CliRun, secured_copy: Path, tmp_path: Path) -> None:
    config = ("--config", str(secured_copy))
    result = builder_cli(*config, "seed", "--all", "--out", "s")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["s/test166-cidata.iso", "s/test167-cidata.iso"]
    assert result.stderr == ""
    result = builder_cli(*config, "seed", "test167", "--format", "ec2", "--out", "e")
    assert result.returncode == 0
    assert (tmp_path / "e" / "test167.user-data").read_text().startswith("#cloud-config\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope"], "error: NODE: no node 'nope' in the cluster (test166, test167)"),
        ([], "error: name the nodes to seed, or --all, not both and not neither"),
        (["test166", "--all"], "error: name the nodes to seed, or --all, not both and not neither"),
    ],
)
def test_seed_cli_errors(
    builder_cli: CliRun, tmp_path: Path, args: list[str], message: str
) -> None:
    result = builder_cli("seed", *args, "--out", "s")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [message]
    assert not (tmp_path / "s").exists()


def test_no_seed_for_a_node_whose_roles_disagree(
    config_copy: Path, builder_cli: CliRun, tmp_path: Path
) -> None:
    """test166 is master and slave; the two roles write one file differently: no image, no seed."""
    master = config_copy / "roles" / "master.yaml"
    master.write_text(
        master.read_text().replace(
            "files:\n",
            'files:\n  - path: /etc/mesos-slave/containerizers\n    content: "mesos\\n"\n',
        )
    )
    write_sample_secrets(config_copy)
    result = builder_cli("--config", str(config_copy), "seed", "test166", "--out", "s")
    assert result.returncode == 2, result.stderr
    assert "roles master and slave disagree on file /etc/mesos-slave/containerizers" in (
        result.stderr
    )
    assert not (tmp_path / "s").exists()
    result = builder_cli("--config", str(config_copy), "seed", "test167", "--out", "s")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("old", "new", "words"),
    [
        (
            "    roles: [slave]\n    attributes",
            "    roles: [master]\n    attributes",
            "only a node with the 'slave' role has attributes",
        ),
        ("ip: 192.168.50.22", "ip: 192.168.51.22", "outside the cluster's network"),
        ("prefix: 24", "prefix: 33", "less than or equal to 32"),
        ("mac: 52:54:00:00:50:22", "mac: 52:54:00:00:50", "not a MAC address"),
        ("rack: r1", "rack: r1; reboot", "not a value like r1"),
    ],
)
def test_inventory_errors(
    config_copy: Path, builder_cli: CliRun, tmp_path: Path, old: str, new: str, words: str
) -> None:
    text = THREE_MASTERS.read_text()
    assert old in text
    (config_copy / "cluster.yaml").write_text(text.replace(old, new, 1))
    result = builder_cli("--config", str(config_copy), "seed", "--all", "--out", "s")
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("error: ")
    assert "cluster.yaml:" in line
    assert words in line
    assert not (tmp_path / "s").exists()


def _big_cluster(config_copy: Path, nodes: int) -> LoadedConfig:
    (config_copy / "cluster.yaml").write_text(generated_cluster_yaml(nodes))
    write_sample_secrets(config_copy)
    return load_config(config_copy)


def test_hosts_file_stays_small_at_scale(config_copy: Path) -> None:
    """A node's /etc/hosts names the masters and the node, not its 3,499 neighbours."""
    big = _big_cluster(config_copy, 3500)
    facts = ClusterFacts.of(big)
    node = big.config.cluster.nodes[3499]
    document = YAML(typ="safe").load(node_seed(big, node, secrets=SAMPLE_SECRETS).user_data)
    [hosts] = [entry for entry in document["write_files"] if entry["path"] == "/etc/hosts"]
    assert "encoding" not in hosts
    lines = hosts["content"].splitlines()
    assert [line.split()[1] for line in lines[2:]] == [
        *(m.hostname for m in facts.masters),
        "node03499",
    ]
    assert lines[-1] == "10.1.13.250 node03499"


def test_ec2_user_data_is_gzipped_over_16k(config_copy: Path, tmp_path: Path) -> None:
    import base64
    import gzip

    keys = [
        "ssh-ed25519 "
        + base64.b64encode(b"\0\0\0\x0bssh-ed25519\0\0\0 " + bytes([i]) * 32).decode()
        + f" key{i}"
        for i in range(200)
    ]
    text = generated_cluster_yaml(10).replace(
        "nodes:", "ssh_authorized_keys:\n" + "".join(f"  - {k}\n" for k in keys) + "nodes:", 1
    )
    (config_copy / "cluster.yaml").write_text(text)
    write_sample_secrets(config_copy)
    big = load_config(config_copy)
    assert (
        len(node_seed(big, big.config.cluster.nodes[7], secrets=SAMPLE_SECRETS).user_data) > 16384
    )
    [path] = write_seeds(big, [big.config.cluster.nodes[7]], tmp_path / "e", SeedFormat.EC2)
    data = path.read_bytes()
    assert len(data) <= 16384
    assert gzip.decompress(data).decode().startswith("#cloud-config\n")
    small = write_seeds(big, [], tmp_path / "none", SeedFormat.EC2)
    assert small == []


@pytest.mark.parametrize(("failures", "code", "calls"), [(0, 0, 1), (2, 0, 3), (9, 1, 6)])
def test_the_firewall_reload_is_tried_again(
    tmp_path: Path, failures: int, code: int, calls: int
) -> None:
    """runcmd's first command: firewall-cmd --reload until it succeeds, six times at most,
    10 s apart; exit 1 when it never does (runcmd itself goes on regardless)."""
    result = subprocess.run(
        RELOAD_FIREWALL, env=fake_firewall_cmd(tmp_path, failures), capture_output=True, check=False
    )
    assert result.returncode == code
    assert recorded(tmp_path, "calls") == ["--reload"] * calls
    assert recorded(tmp_path, "sleeps") == ["10"] * (calls - 1 + code)
