"""Benchmark: the per-package overhead of a bootstrap, on a synthetic tree.

A layered tree of N tiny in-tree-backend sdists (each with 0-3 dependencies on packages
of lower layers; the top-level ``app`` depends on every one, so all N are built) is served
on 127.0.0.1. Each run bootstraps it cold into a fresh output directory, then again in the
same directory (the re-run). Builds are trivial, so what is measured is orchestration:
resolution, downloads, build environments, backend calls, publishing.

    python benchmarks/synthetic_tree.py N [N ...] [--runs 3] [--jobs 2]
        [--checkout DIR ...] [--profile]

Every run is a ``python -m bootstrapper`` process. With ``--checkout DIR`` (repeatable)
the bootstrapper of each source tree is run in turn (by PYTHONPATH), alternately, so that
trees are measured side by side on the same machine state. Medians are reported.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support import FixtureIndex, Project

ROOT = Path(__file__).resolve().parent.parent


def synthetic_tree(count: int, seed: int = 7) -> list[Project]:
    """``count`` packages in layers of ten, each depending on 0-3 of earlier layers,
    and ``app`` depending on them all."""
    rng = random.Random(seed)
    names = [f"pkg-{i:04d}" for i in range(count)]
    projects = []
    for i, name in enumerate(names):
        lower = names[: i - i % 10]
        deps = rng.sample(lower, min(len(lower), rng.randint(0, 3)))
        projects.append(Project(name, "1.0", dependencies=deps))
    projects.append(Project("app", "1.0", dependencies=names))
    return projects


def bootstrap(checkout: Path, index: str, output: Path, jobs: int, profile: bool) -> float:
    """Wall seconds of one ``bootstrapper bootstrap app`` process."""
    args = [sys.executable, "-m", "bootstrapper", "bootstrap", "-q", "--index-url", index,
            "--output-dir", str(output), "--jobs", str(jobs), "app"]  # fmt: skip
    if profile:
        args.append("--profile")
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    started = time.perf_counter()
    # In the checkout: ``-m`` puts the working directory first on sys.path, so from
    # anywhere else another tree's bootstrapper (this one's, editable-installed) runs.
    done = subprocess.run(args, env=env, cwd=checkout, check=False, stdout=subprocess.DEVNULL)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"bootstrap with {checkout} failed with {done.returncode}")
    return elapsed


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("counts", nargs="+", type=int, metavar="N")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--no-rerun", action="store_true", help="measure cold runs only")
    parser.add_argument(
        "--checkout",
        action="append",
        type=Path,
        help="a bootstrapper source tree to run (repeatable; default: this one)",
    )
    parser.add_argument(
        "--profile", action="store_true", help="pass --profile (checkouts that have it)"
    )
    args = parser.parse_args()
    checkouts = [c.resolve() for c in args.checkout or [ROOT]]
    for checkout in checkouts:
        # Byte-compiled, as an installed bootstrapper is (pip compiles on install): where
        # PYTHONDONTWRITEBYTECODE is set, a checkout would be compiled again at each start.
        subprocess.run(
            [sys.executable, "-m", "compileall", "-q", str(checkout / "bootstrapper")],
            check=True,
        )
        ran = subprocess.run(
            [sys.executable, "-c", "import bootstrapper; print(bootstrapper.__file__)"],
            env={**os.environ, "PYTHONPATH": str(checkout)},
            cwd=checkout,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        if not Path(ran).is_relative_to(checkout):
            raise SystemExit(f"{checkout}: runs {ran} instead, not this checkout")
    work = Path(tempfile.mkdtemp(prefix="bootstrapper-synthetic-"))
    rows = []
    for count in args.counts:
        index = FixtureIndex()
        index.add_all(synthetic_tree(count), work / f"sdists-{count}")
        index.start()
        cold: dict[Path, list[float]] = {c: [] for c in checkouts}
        rerun: dict[Path, list[float]] = {c: [] for c in checkouts}
        try:
            for n in range(args.runs):
                for checkout in checkouts:
                    with tempfile.TemporaryDirectory(dir=work) as tmp:
                        output = Path(tmp) / "out"
                        cold[checkout].append(
                            bootstrap(checkout, index.url, output, args.jobs, args.profile)
                        )
                        if not args.no_rerun:
                            rerun[checkout].append(
                                bootstrap(checkout, index.url, output, args.jobs, args.profile)
                            )
                    print(f"  N={count} run {n + 1} {checkout}: cold {cold[checkout][-1]:.2f}s"
                          + (f", re-run {rerun[checkout][-1]:.2f}s" if rerun[checkout] else ""),
                          file=sys.stderr)  # fmt: skip
        finally:
            index.stop()
        for checkout in checkouts:
            c = statistics.median(cold[checkout])
            r = statistics.median(rerun[checkout]) if rerun[checkout] else float("nan")
            rows.append(
                (count, str(checkout), c, 1000 * c / (count + 1), r, 1000 * r / (count + 1))
            )
    print(f"medians of {args.runs} runs, --jobs {args.jobs} (N packages + app):")
    print(f"{'N':>5}  {'cold s':>7}  {'ms/pkg':>6}  {'re-run s':>8}  {'ms/pkg':>6}  checkout")
    for count, checkout, c, cms, r, rms in rows:
        print(f"{count:5d}  {c:7.2f}  {cms:6.0f}  {r:8.2f}  {rms:6.1f}  {checkout}")


if __name__ == "__main__":
    run()
