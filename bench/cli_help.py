"""How fast does `builder --help` answer? Median of several runs, against Python's own start.

    .venv/bin/python bench/cli_help.py [--runs N]

Prints the median wall time of `python -m builder --help` and of `python -c pass`
(the baseline, measured in the same run) and their ratio. The target is under 0.5 s.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def median_seconds(argv: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    median_seconds([sys.executable, "-m", "builder", "--help"], 2)  # warm the caches
    baseline = median_seconds([sys.executable, "-c", "pass"], args.runs)
    builder_help = median_seconds([sys.executable, "-m", "builder", "--help"], args.runs)
    print(f"runs: {args.runs}")
    print(f"python -c pass          median {baseline * 1000:7.1f} ms")
    print(f"builder --help          median {builder_help * 1000:7.1f} ms")
    print(f"ratio                   {builder_help / baseline:7.2f}x")
    print(f"target < 500 ms         {'met' if builder_help < 0.5 else 'MISSED'}")


if __name__ == "__main__":
    main()
