"""`builder build` timings: a cached no-op against the first build, and two roles at once.

    .venv/bin/python bench/build.py [--iso ISO] [--noop-runs 5]

Without --iso it builds against the test stand-in installer ISO
(tests/fixtures/standin/build.sh, as root). Prints, from one run:
- the first (cold) build of `slave`, and the median of --noop-runs no-op
  rebuilds (each confirmed a cache hit by its --json events), and their ratio;
- `master` then `slave` built one after the other, against `master slave`
  built in one command (in parallel), and their ratio.
Builds run under whatever accelerator `builder` chooses (TCG here).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from builder.config.load import embedded_config_dir
from builder.progress import EventKind

REPO = Path(__file__).resolve().parent.parent


def standin_iso() -> Path:
    script = REPO / "tests/fixtures/standin/build.sh"
    cache = "/var/tmp/builder-test-cache/standin"
    result = subprocess.run(
        ["bash", str(script), cache], check=True, capture_output=True, text=True
    )
    return Path(result.stdout.strip().splitlines()[-1]) / "CentOS-7-x86_64-Minimal-standin.iso"


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def cache_hit(argv: list[str]) -> float:
    """One no-op rebuild, timed; its --json events must say it was a cache hit."""
    start = time.perf_counter()
    result = subprocess.run(
        [*argv, "--json"], check=True, capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    elapsed = time.perf_counter() - start
    kinds = [json.loads(line)["event"] for line in result.stdout.splitlines() if line]
    if kinds != [EventKind.CACHED]:
        raise SystemExit(f"a no-op rebuild was not a cache hit: events {kinds}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iso", type=Path)
    parser.add_argument("--noop-runs", type=int, default=5)
    args = parser.parse_args()
    iso = args.iso or standin_iso()
    checksum = "sha256:" + hashlib.sha256(iso.read_bytes()).hexdigest()
    with tempfile.TemporaryDirectory(prefix="builder-bench-", dir="/var/tmp") as scratch:
        work = Path(scratch)
        config = work / "roles-config"
        shutil.copytree(embedded_config_dir(), config, ignore=shutil.ignore_patterns("__*"))
        os_yaml = config / "os.yaml"
        os_yaml.write_text(os_yaml.read_text().replace("  size_gb: 20", "  size_gb: 8"))

        def build(out: str, *roles: str) -> list[str]:
            return [
                sys.executable,
                "-m",
                "builder",
                "--config",
                str(config),
                "build",
                *roles,
                "--iso",
                str(iso),
                "--iso-checksum",
                checksum,
                "--out",
                str(work / out),
            ]

        cold = timed(build("noop", "slave"))
        noop = statistics.median(cache_hit(build("noop", "slave")) for _ in range(args.noop_runs))
        sequential = timed(build("seq", "master")) + timed(build("seq", "slave"))
        parallel = timed(build("par", "master", "slave"))
    print(f"{'first build (slave)':40} {cold:8.1f} s")
    print(f"{f'no-op rebuild, median of {args.noop_runs}':40} {noop:8.2f} s")
    print(f"{'ratio first / no-op':40} {cold / noop:8.0f} x")
    print(f"{'master then slave':40} {sequential:8.1f} s")
    print(f"{'master slave in parallel':40} {parallel:8.1f} s")
    print(f"{'ratio sequential / parallel':40} {sequential / parallel:8.2f} x")


if __name__ == "__main__":
    main()
