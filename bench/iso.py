"""The installer ISO remaster against `cat SRC > DST` of the same 1 GiB ISO.

    .venv/bin/python bench/iso.py [--runs 5] [--size-mib 1024]

Makes a 1 GiB source: the cached stand-in installer ISO (tests/fixtures/standin)
with a file of random bytes added (xorriso, boot setup replayed), in /var/tmp.
Then, in one run, alternating, --runs times each on the same disk:
- `cat SRC > DST` (the baseline: one read, one write, no fsync), and the
  same followed by `sync DST` (for context: a written-through copy);
- `builder build slave --target iso --iso SRC --iso-checksum ...`: the whole
  command (Python start, layout read, the xorriso remaster, implantisomd5),
  twice: "builder-hashing" is the first remaster of a source (its SHA-256
  verified), "builder" the next one (the verified source remembered by its
  identity, as on every later build or remaster);
and, for context, the parts alone: SHA-256 of the source, the xorriso
remaster, implantisomd5. Prints medians and the ratio builder / cat (target:
within 3x).
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/ of this checkout
from builder.fsutil import sha256_of
from tests.integration.standin import build_standin

STANDIN_ISO = "CentOS-7-x86_64-Minimal-standin.iso"


def padded_source(work: Path, size_mib: int) -> Path:
    standin = build_standin() / STANDIN_ISO
    pad = work / "padding.bin"
    missing = size_mib * 1024**2 - standin.stat().st_size - 4 * 1024**2
    with pad.open("wb") as handle:
        while missing > 0:
            chunk = min(missing, 64 * 1024**2)
            handle.write(os.urandom(chunk))
            missing -= chunk
    source = work / "source.iso"
    subprocess.run(
        [
            "xorriso",
            "-indev",
            str(standin),
            "-outdev",
            str(source),
            "-boot_image",
            "any",
            "replay",
            "-map",
            str(pad),
            "/padding.bin",
        ],
        check=True,
        capture_output=True,
    )
    pad.unlink()
    return source


def timed(argv: list[str], stdout: Path | None = None, env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    if stdout is None:
        subprocess.run(
            argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
        )
    else:
        with stdout.open("wb") as handle:
            subprocess.run(argv, check=True, stdout=handle)
    return time.perf_counter() - start


def sha256_seconds(path: Path) -> float:
    """The source check alone: builder's own SHA-256 of a file."""
    start = time.perf_counter()
    sha256_of(path)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--size-mib", type=int, default=1024)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="builder-bench-iso-", dir="/var/tmp") as scratch:
        work = Path(scratch)
        source = padded_source(work, args.size_mib)
        checksum = "sha256:" + sha256_of(source)
        builder = [sys.executable, "-m", "builder", "build", "slave", "--target", "iso"]
        builder += ["--iso", str(source), "--iso-checksum", checksum, "--out", str(work / "out")]
        copy = work / "copy.iso"
        remastered = work / "remastered.iso"
        env = {**os.environ, "XDG_CACHE_HOME": str(work / "cache")}
        memo = work / "cache" / "builder" / "verified.json"
        names = ["cat", "cat+fsync", "builder", "builder-hashing", "sha256", "xorriso"]
        names.append("implantisomd5")
        times: dict[str, list[float]] = {name: [] for name in names}
        for _ in range(args.runs):
            copy.unlink(missing_ok=True)
            times["cat"].append(timed(["cat", str(source)], stdout=copy))
            copy.unlink()
            start = time.perf_counter()
            timed(["cat", str(source)], stdout=copy)
            timed(["sync", str(copy)])
            times["cat+fsync"].append(time.perf_counter() - start)
            memo.unlink(missing_ok=True)  # the first remaster of a source hashes it
            shutil.rmtree(work / "out", ignore_errors=True)
            times["builder-hashing"].append(timed(builder, env=env))
            shutil.rmtree(work / "out", ignore_errors=True)
            times["builder"].append(timed(builder, env=env))  # the source remembered
            times["sha256"].append(sha256_seconds(source))
            remastered.unlink(missing_ok=True)
            replay = ["xorriso", "-stdio_sync", "off", "-indev", str(source)]
            replay += ["-outdev", str(remastered)]
            times["xorriso"].append(timed([*replay, "-boot_image", "any", "replay"]))
            times["implantisomd5"].append(timed(["implantisomd5", "--force", str(remastered)]))
        size = source.stat().st_size
        print(f"source ISO: {size / 1024**2:.0f} MiB; {args.runs} runs each, medians:")
        medians = {name: statistics.median(values) for name, values in times.items()}
        for name, value in medians.items():
            print(f"  {name:14} {value:6.2f} s  ({size / 1024**2 / value:6.0f} MiB/s)")
        ratio = medians["builder"] / medians["cat"]
        print(f"builder / cat: {ratio:.2f}x (target: within 3x)")
        first = medians["builder-hashing"] / medians["cat"]
        print(f"builder-hashing / cat: {first:.2f}x (the first remaster of a source hashes it)")
        synced = medians["builder"] / medians["cat+fsync"]
        print(
            f"builder / (cat + fsync of the copy): {synced:.2f}x (context: builder does not fsync)"
        )


if __name__ == "__main__":
    main()
