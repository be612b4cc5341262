"""Benchmark: how long resolution waits for builds that only tell metadata.

A tree served on 127.0.0.1 whose packages have no cheap metadata (sdist-only, dynamic
PKG-INFO): ``app`` needs ``aaa-slow`` (one long build) and the head of a chain of
``--depth`` packages, each of which only its build (or, with ``--prepare-metadata``, its
backend's ``prepare_metadata_for_build_wheel``) says needs the next. A resolver that waits
for ``aaa-slow`` before it looks at the chain takes about slow + depth x build; one that
does not, about max(slow, depth x build). Medians of several cold runs.

    python benchmarks/metadata_waits.py [--runs 3] [--depth 5] [--build-seconds 1]
        [--slow-seconds 6] [--prepare-metadata] [--jobs 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bootstrapper.cli import main
from tests.support import FixtureIndex, Project


def one_run(index: FixtureIndex, jobs: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        args = ["bootstrap", "-q", "--index-url", index.url, "--output-dir", tmp]
        code = main([*args, "--jobs", str(jobs), "app"])
        elapsed = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"bootstrap failed with {code}")
    return elapsed


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--depth", type=int, default=5)
    parser.add_argument("--build-seconds", type=float, default=1.0)
    parser.add_argument("--slow-seconds", type=float, default=6.0)
    parser.add_argument("--prepare-metadata", action="store_true")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()

    index = FixtureIndex()
    index.start()
    chain = [f"link{i}" for i in range(args.depth)]
    with tempfile.TemporaryDirectory() as sdists:
        index.add(Project("app", dependencies=["aaa-slow", chain[0]]), Path(sdists))
        index.add(Project("aaa-slow", tool={"sleep": args.slow_seconds}), Path(sdists))
        for i, name in enumerate(chain):
            tool: dict[str, object] = {"sleep": args.build_seconds}
            if args.prepare_metadata:
                tool["prepare-metadata"] = True
            index.add(Project(name, dependencies=chain[i + 1 : i + 2], tool=tool), Path(sdists))
        timings = [one_run(index, args.jobs) for _ in range(args.runs)]
    index.stop()
    serial = args.slow_seconds + args.depth * args.build_seconds
    overlapped = max(args.slow_seconds, args.depth * args.build_seconds)
    print(
        f"median {statistics.median(timings):.2f}s over {args.runs} runs "
        f"({[f'{t:.1f}' for t in timings]}); builds alone: {serial:.0f}s one after the "
        f"other, {overlapped:.0f}s overlapped (depth {args.depth}, --jobs {args.jobs}"
        + (", prepare-metadata" if args.prepare_metadata else "")
        + ")"
    )


if __name__ == "__main__":
    run()
