"""`builder mirror` against `dnf download --resolve` of the same packages, same run.

    .venv/bin/python -m bench.mirror [--packages 300] [--size-kib 256] [--runs 5]

Builds one repository of --packages small RPMs (one rpmbuild of one spec with a
sub-package each, random payloads of --size-kib, each package requiring the two
at twice its index plus one and two: bench-0 needs them all), serves it on 127.0.0.1 (the
tests' server, byte ranges included) and times, into a fresh directory each run:
- `builder mirror`: resolve, parallel fetch, checksum, createrepo_c, lock;
- `dnf download --resolve --alldeps` of the same package (the baseline);
- `builder mirror` again into the full directory (the no-op rerun).
Prints each run and the medians, and the ratio of the medians.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.integration.rpmrepo import serve


def write_config(directory: Path, url: str) -> None:
    """The embedded default config with one repository (this one, unsigned) and the
    master role and the OS installing bench-0 (and so every package)."""
    from ruamel.yaml import YAML

    from builder.config.load import embedded_config_dir

    shutil.copytree(embedded_config_dir(), directory, ignore=shutil.ignore_patterns("__*"))
    yaml = YAML()
    os_yaml = yaml.load(directory / "os.yaml")
    os_yaml["repos"] = [{"name": "bench", "baseurl": url, "gpgcheck": False}]
    os_yaml["base_packages"] = ["bench-0"]
    yaml.dump(os_yaml, directory / "os.yaml")
    master = yaml.load(directory / "roles" / "master.yaml")
    master["repos"] = []
    master["packages"] = ["bench-0"]
    yaml.dump(master, directory / "roles" / "master.yaml")


def spec(count: int, size_kib: int) -> str:
    lines = [
        "Name: bench",
        "Version: 1.0",
        "Release: 1",
        "Summary: bench",
        "License: MIT",
        "BuildArch: noarch",
        "%description",
        "bench",
    ]
    for index in range(count):
        lines += [f"%package -n bench-{index}", f"Summary: bench {index}"]
        children = [child for child in (2 * index + 1, 2 * index + 2) if child < count]
        lines += [f"Requires: bench-{child}" for child in children]
        lines += [f"%description -n bench-{index}", "bench"]
    lines += ["%install", "mkdir -p %{buildroot}/usr/share/bench"]
    lines.append(
        f"for i in $(seq 0 {count - 1}); do head -c {size_kib * 1024} /dev/urandom "
        "> %{buildroot}/usr/share/bench/$i; done"
    )
    for index in range(count):
        lines += [f"%files -n bench-{index}", f"/usr/share/bench/{index}"]
    return "\n".join(lines) + "\n"


def make_repository(work: Path, count: int, size_kib: int) -> Path:
    top = work / "rpmbuild"
    (top / "SPECS").mkdir(parents=True)
    path = top / "SPECS" / "bench.spec"
    path.write_text(spec(count, size_kib))
    subprocess.run(
        [
            "rpmbuild",
            "-bb",
            "--define",
            f"_topdir {top}",
            "--define",
            "_binary_payload w1.gzdio",
            str(path),
        ],
        check=True,
        capture_output=True,
    )
    repo = work / "repo"
    shutil.copytree(top / "RPMS" / "noarch", repo)
    subprocess.run(["createrepo_c", "--quiet", str(repo)], check=True)
    return repo


def timed(argv: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    result = subprocess.run(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"failed: {' '.join(argv)}\n{result.stderr.decode()[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--packages", type=int, default=300)
    parser.add_argument("--size-kib", type=int, default=256)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="builder-bench-mirror-", dir="/var/tmp") as scratch:
        work = Path(scratch)
        repo = make_repository(work, args.packages, args.size_kib)
        total = sum(p.stat().st_size for p in repo.glob("*.rpm"))
        print(f"repository: {args.packages} RPMs, {total / 1024**2:.1f} MiB", flush=True)
        with serve(work) as base:
            url = f"{base}repo/"
            config = work / "config"
            write_config(config, url)
            builder = [sys.executable, "-m", "builder", "--config", str(config), "mirror", "master"]
            mirror_times, dnf_times, noop_times = [], [], []
            for run in range(args.runs):
                target = work / f"mirror-{run}"
                mirror_times.append(timed([*builder, "--to", str(target)], work))
                noop_times.append(timed([*builder, "--to", str(target)], work))
                fetched = len(list((target / "Packages").glob("*.rpm")))
                destination = work / f"dnf-{run}"
                root = work / f"root-{run}"
                dnf_times.append(
                    timed(
                        [
                            "dnf",
                            "-q",
                            "--installroot",
                            str(root),
                            "--releasever",
                            "7",
                            "--setopt=reposdir=/dev/null",
                            "--setopt=cachedir=" + str(root / "cache"),
                            f"--repofrompath=bench,{url}",
                            "--repo=bench",
                            "download",
                            "--resolve",
                            "--alldeps",
                            "--destdir",
                            str(destination),
                            "bench-0",
                        ],
                        work,
                    )
                )
                downloaded = len(list(destination.glob("*.rpm")))
                print(
                    f"run {run + 1}: builder mirror {mirror_times[-1]:.2f} s ({fetched} RPMs), "
                    f"dnf download {dnf_times[-1]:.2f} s ({downloaded} RPMs), "
                    f"no-op rerun {noop_times[-1]:.2f} s",
                    flush=True,
                )
                for path in (target, destination, root):
                    shutil.rmtree(path)
        mirror, dnf, noop = (statistics.median(t) for t in (mirror_times, dnf_times, noop_times))
        print(f"median builder mirror: {mirror:.2f} s")
        print(f"median dnf download --resolve: {dnf:.2f} s")
        print(f"median no-op rerun: {noop:.2f} s")
        print(f"ratio dnf / builder mirror: {dnf / mirror:.2f}x (above 1: builder is faster)")
        print(f"cpus: {os.cpu_count()}")


if __name__ == "__main__":
    main()
