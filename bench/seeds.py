"""Seeds for a generated inventory: `builder seed --all` against `cloud-localds` per node.

    .venv/bin/python bench/seeds.py [--nodes 1000] [--large 10000] [--runs 3]

Generates an inventory (3 masters, the rest slaves), then measures in one run:
- `builder seed --all --format iso` (one process, all nodes), median of --runs;
- `cloud-localds` (cloud-image-utils) making the same images, one process per
  node, fed the same user-data and meta-data, median of --runs;
- `builder seed --all` for --large nodes, to show how the time scales.
A node's /etc/hosts names localhost, the masters and the node itself (not every
agent), so a seed's size does not grow with the cluster and the time grows
linearly with the node count; the script prints the bytes written too.
Measured here (2 cores, --runs 3, medians): 1,000 nodes 0.67 s, 10,000 nodes
3.63 s (5.4x, target <= 11x); cloud-localds per node 15.7 s for 1,000 (23.6x).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from builder.config.load import embedded_config_dir
from builder.config.secrets import write_secrets


def inventory(directory: Path, nodes: int) -> Path:
    config = directory / f"config-{nodes}"
    shutil.copytree(embedded_config_dir(), config, ignore=shutil.ignore_patterns("__*"))
    lines = ["name: bench", "network: 10.0.0.0/8", "nodes:"]
    for index in range(nodes):
        role = "master" if index < 3 else "slave"
        address = f"10.{1 + index // 62500}.{(index // 250) % 250}.{index % 250 + 1}"
        lines += [f"  - hostname: node{index:05d}", f"    ip: {address}", f"    roles: [{role}]"]
    (config / "cluster.yaml").write_text("\n".join(lines) + "\n")
    write_secrets(config, rotate=False)  # secured, as users seed it
    return config


def builder_seed(config: Path, out: Path, fmt: str) -> float:
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "builder",
            "--config",
            str(config),
            "seed",
            "--all",
            "--format",
            fmt,
            "--out",
            str(out),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def cloud_localds(seed_dirs: Path, out: Path) -> float:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    nodes = sorted(p for p in seed_dirs.iterdir() if p.is_dir())
    start = time.perf_counter()
    for node in nodes:
        subprocess.run(
            [
                "cloud-localds",
                str(out / f"{node.name}-cidata.iso"),
                str(node / "user-data"),
                str(node / "meta-data"),
            ],
            check=True,
        )
    return time.perf_counter() - start


def size_of(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.iterdir())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--large", type=int, default=10000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="builder-bench-", dir="/var/tmp") as scratch:
        work = Path(scratch)
        config = inventory(work, args.nodes)
        builder_seed(config, work / "dirs", "dir")  # the inputs cloud-localds gets
        ours = [builder_seed(config, work / "ours", "iso") for _ in range(args.runs)]
        theirs = [cloud_localds(work / "dirs", work / "theirs") for _ in range(args.runs)]
        ours_bytes, theirs_bytes = size_of(work / "ours"), size_of(work / "theirs")
        shutil.rmtree(work / "theirs")
        large_config = inventory(work, args.large)
        large = [builder_seed(large_config, work / "large", "iso") for _ in range(args.runs)]
        large_bytes = size_of(work / "large")
    ours_median, theirs_median = statistics.median(ours), statistics.median(theirs)
    large_median = statistics.median(large)
    rows = [
        (f"builder seed --all, {args.nodes} nodes", ours_median, ours_bytes),
        (f"cloud-localds x {args.nodes}", theirs_median, theirs_bytes),
        (f"builder seed --all, {args.large} nodes", large_median, large_bytes),
    ]
    print(f"runs: {args.runs}, medians")
    for label, seconds, size in rows:
        print(f"{label:38} {seconds:8.2f} s {size / 1e6:9.1f} MB written")
    print(
        f"{'ratio cloud-localds / builder':38} {theirs_median / ours_median:8.1f} x (target >= 10)"
    )
    scale = large_median / ours_median
    print(f"{f'builder {args.large} / {args.nodes} nodes':38} {scale:8.1f} x (target <= 11)")


if __name__ == "__main__":
    main()
