"""Benchmark: `build-sequence` of a synthetic tree locally vs on a local Dask cluster.

A layered tree of N tiny in-tree-backend sdists (each with 0-3 dependencies on lower
layers) is bootstrapped once; its build order is then rebuilt with `build-sequence
--force` locally (`--jobs 2`) and on a cluster of two workers (`dask scheduler` and two
`dask worker --nthreads 1` processes on 127.0.0.1), alternately, several times. Reports
the medians and the ratio, and checks that both produce the same wheels.

    python benchmarks/dask_sequence.py [N] [--runs 3]

On one 2-core machine the cluster cannot be faster (the same two cores, plus shipping
files and results): the figure is the cost of going through Dask per package.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bootstrapper.cli import main
from tests.dask_cluster import Cluster
from tests.support import FixtureIndex, Project


def synthetic_tree(count: int, seed: int = 7) -> list[Project]:
    rng = random.Random(seed)
    names = [f"pkg-{i:04d}" for i in range(count)]
    projects = []
    for i, name in enumerate(names):
        lower = names[: i - i % 10]  # packages of earlier layers of ten
        deps = rng.sample(lower, min(len(lower), rng.randint(0, 3)))
        projects.append(Project(name, "1.0", dependencies=deps))
    projects.append(Project("app", "1.0", dependencies=names))
    return projects


def wheels(output: Path) -> dict[str, str]:
    return {
        p.name: json.loads(Path(f"{p}.build.json").read_text())["wheel_sha256"]
        for p in (output / "wheels").glob("*.whl")
    }


def timed(argv: list[str]) -> float:
    started = time.perf_counter()
    code = main(argv)
    elapsed = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"{argv[0]} failed with {code}")
    return elapsed


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", nargs="?", type=int, default=120)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bootstrapper-dask-bench-"))
    index = FixtureIndex()
    index.add_all(synthetic_tree(args.count), work / "sdists")
    index.start()
    cluster = Cluster(work / "cluster")
    (work / "cluster").mkdir()
    try:
        seed = work / "seed"
        timed(["bootstrap", "-q", "--index-url", index.url, "--output-dir", str(seed), "app"])
        order = str(seed / "build-order.json")
        cluster.start()
        for name in ("w1", "w2"):
            cluster.add_worker(name, threads=1)
        cluster.wait_for_workers(2)
        local, dask = [], []
        for n in range(args.runs):
            out_local, out_dask = work / f"local-{n}", work / f"dask-{n}"
            local.append(timed(["build-sequence", order, "-q", "--force", "--jobs", "2",
                                "--output-dir", str(out_local)]))  # fmt: skip
            dask.append(timed(["build-sequence", order, "-q", "--force", "--dask",
                               cluster.address, "--output-dir", str(out_dask)]))  # fmt: skip
            if wheels(out_local) != wheels(out_dask):
                raise SystemExit("the cluster built other wheels than the local run")
        packages = len(wheels(work / "local-0"))
        lm, dm = statistics.median(local), statistics.median(dask)
        print(f"build-sequence of {packages} wheels, median of {args.runs} runs:")
        print(f"  local --jobs 2:           {lm:6.1f} s  ({1000 * lm / packages:.0f} ms/package)")
        print(f"  Dask, 2 workers x 1 thread: {dm:6.1f} s  ({1000 * dm / packages:.0f} ms/package)")
        print(f"  ratio Dask/local: {dm / lm:.2f}; wheels byte-identical: yes")
    finally:
        cluster.stop()
        index.stop()


if __name__ == "__main__":
    run()
