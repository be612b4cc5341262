"""Benchmark: a wide tree whose packages have no cheap metadata (sdist-only, dynamic
PKG-INFO), so the resolver must build each one to learn its dependencies.

Compares the run with speculative metadata look-ups (the default) against one where the
resolver asks for each package only when it reaches it. Medians of several runs.

    python benchmarks/sdist_only_tree.py [--runs 3] [--width 8] [--build-seconds 0.5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bootstrapper import bootstrap
from bootstrapper.cli import main
from tests.support import FixtureIndex, Project


def one_run(index: FixtureIndex, jobs: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        code = main(
            [
                "bootstrap",
                "-q",
                "--index-url",
                index.url,
                "--output-dir",
                tmp,
                "--jobs",
                str(jobs),
                "app",
            ]
        )
        elapsed = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"bootstrap failed with {code}")
    return elapsed


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--width", type=int, default=8)
    parser.add_argument("--build-seconds", type=float, default=0.5)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()

    index = FixtureIndex()
    index.start()
    with tempfile.TemporaryDirectory() as sdists:
        libs = [f"lib{i}" for i in range(args.width)]
        index.add(Project("app", dependencies=libs), Path(sdists))
        for name in libs:
            index.add(Project(name, tool={"sleep": args.build_seconds}), Path(sdists))
        speculating = bootstrap.Bootstrapper.speculate
        timings: dict[str, list[float]] = {"speculative": [], "one at a time": []}
        for _ in range(args.runs):
            bootstrap.Bootstrapper.speculate = speculating  # type: ignore[method-assign]
            timings["speculative"].append(one_run(index, args.jobs))
            bootstrap.Bootstrapper.speculate = lambda self, r, c: None  # type: ignore[method-assign]
            timings["one at a time"].append(one_run(index, args.jobs))
    index.stop()
    medians = {mode: statistics.median(values) for mode, values in timings.items()}
    for mode, value in medians.items():
        print(f"{mode}: median {value:.2f}s over {args.runs} runs")
    ratio = medians["one at a time"] / medians["speculative"]
    print(
        f"speed-up {ratio:.2f}x ({args.width} packages, {args.build_seconds}s builds, "
        f"--jobs {args.jobs})"
    )


if __name__ == "__main__":
    run()
