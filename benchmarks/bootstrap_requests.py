"""Benchmark: bootstrap `requests` from PyPI, cold and re-run.

Reports wall time and peak memory (RSS of bootstrapper and its children) as medians of
several runs. Each cold run uses a fresh output directory (so every sdist is downloaded
and every wheel built); each re-run follows its cold run in the same directory.

    python benchmarks/bootstrap_requests.py [--runs 3] [--jobs N] [REQUIREMENT ...]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_once(output: Path, requirements: list[str], jobs: int | None) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one ``bootstrapper bootstrap`` process tree."""
    args = [
        sys.executable,
        "-m",
        "bootstrapper",
        "bootstrap",
        "-q",
        "--output-dir",
        str(output),
        *requirements,
    ]
    if jobs:
        args += ["--jobs", str(jobs)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    subprocess.run(args, check=True)
    elapsed = time.perf_counter() - started
    # ru_maxrss of RUSAGE_CHILDREN is the largest single descendant (KiB on Linux).
    peak = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    return elapsed, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("requirements", nargs="*", default=["requests"])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=None)
    args = parser.parse_args()

    cold: list[float] = []
    rerun: list[float] = []
    peaks: list[float] = []
    for i in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="bootstrap-bench-") as tmp:
            output = Path(tmp) / "out"
            seconds, peak = run_once(output, args.requirements, args.jobs)
            cold.append(seconds)
            peaks.append(peak)
            seconds, _ = run_once(output, args.requirements, args.jobs)
            rerun.append(seconds)
            wheels = len(list((output / "wheels").glob("*.whl")))
        print(
            f"run {i + 1}: cold {cold[-1]:.1f}s, re-run {rerun[-1]:.2f}s, "
            f"{wheels} wheels, peak RSS {peak:.0f} MiB",
            flush=True,
        )
    print(
        f"median of {args.runs}: cold {statistics.median(cold):.1f}s, "
        f"re-run {statistics.median(rerun):.2f}s, peak RSS {statistics.median(peaks):.0f} MiB "
        f"({os.cpu_count()} CPUs, {' '.join(args.requirements)})"
    )


if __name__ == "__main__":
    main()
