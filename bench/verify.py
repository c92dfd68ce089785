"""`builder verify` over SSH: one shared connection (the product) against one per command.

    .venv/bin/python -m bench.verify [--runs 3]     (from the repository root)

Boots the node stand-in (tests/fixtures/standin, cached; configured for
test167 and booted with its seed under QEMU TCG, as the first-boot tests do),
then runs the node layer's specs against it, in this process, --runs times
each way:
- shared: what `builder verify` does (one OpenSSH ControlMaster for every check);
- baseline: testinfra's ssh backend as it comes (no ControlPath: a new SSH
  connection, key exchange and login, for every command).
Prints the medians, their ratio and the number of checks. Needs root (loop
mount) and the stand-in's apt packages (./run.sh test installs them).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import testinfra

from builder.config.cluster import ClusterFacts
from builder.config.load import embedded_config_dir, load_config
from builder.config.roles import node_roles
from builder.config.secrets import write_secrets
from builder.firstboot.seed import SeedFormat, write_seeds
from builder.render.role import PROVISION, render_role
from builder.verify.contract import Layer, node_contract
from builder.verify.runner import Connection, connected, run_specs, spec_files
from tests.integration.standin import boot, build_standin, configured_image

SSH_CONFIG = (
    "Host *\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="builder-bench-", dir="/var/tmp") as scratch:
        work = Path(scratch)
        key = work / "id"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        config = work / "roles-config"
        subprocess.run(["cp", "-r", str(embedded_config_dir()), str(config)], check=True)
        public = " ".join(key.with_suffix(".pub").read_text().split()[:2])
        cluster = config / "cluster.yaml"
        cluster.write_text(
            cluster.read_text().replace(
                "nodes:", f"ssh_authorized_keys: ['{public} bench']\nnodes:"
            )
        )
        write_secrets(config, rotate=False)  # secured, as users seed it
        loaded = load_config(config)
        node = loaded.config.cluster.nodes[1]
        roles = node_roles(loaded, node)
        provision = render_role(loaded, roles, packer_version=(1, 6, 6)).files[PROVISION]
        image = configured_image(build_standin(), provision, roles.slug)
        disk = work / "disk.qcow2"
        subprocess.run(
            ["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(image), "-F", "raw", str(disk)],
            check=True,
        )
        [seed] = write_seeds(loaded, [node], work / "seed", SeedFormat.ISO)
        ssh_config = work / "ssh_config"
        ssh_config.write_text(SSH_CONFIG)
        plugin_args = {"image": None, "node": node_contract(loaded, node, ClusterFacts.of(loaded))}
        files = spec_files([Layer.NODE], roles.names)
        shared, separate, checks = [], [], 0
        with boot(disk, seed, work / "vm", key, "debian") as vm:
            spec = f"ssh://debian@127.0.0.1:{vm.port}"
            connection = Connection(spec, key, ssh_config)
            for _ in range(args.runs):
                start = time.perf_counter()
                with connected(connection) as host:
                    outcomes = run_specs(host, plugin_args, files, None)
                shared.append(time.perf_counter() - start)
                checks = len(outcomes)
                assert all(outcome.passed for outcome in outcomes), outcomes
                start = time.perf_counter()
                host = testinfra.get_host(
                    spec, ssh_identity_file=str(key), ssh_config=str(ssh_config), sudo=True
                )
                outcomes = run_specs(host, plugin_args, files, None)
                separate.append(time.perf_counter() - start)
                assert all(outcome.passed for outcome in outcomes), outcomes
    shared_median, separate_median = statistics.median(shared), statistics.median(separate)
    print(f"runs: {args.runs}, node layer of test167 ({checks} checks), QEMU TCG stand-in")
    print(f"shared connection (builder verify)   median {shared_median:7.2f} s")
    print(f"a connection per command (baseline)  median {separate_median:7.2f} s")
    print(f"ratio baseline / shared              {separate_median / shared_median:7.2f}x")


if __name__ == "__main__":
    main()
