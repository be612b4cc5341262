"""Real trees from PyPI, run the way their users run them: from a working directory, with
the default ./overrides and ./bootstrap-output, then installed with pip and imported.

    python benchmarks/real_trees.py [langchain] [numpy] [torch] [--workdir DIR] [--jobs N]
        [--checkout DIR]

- langchain: the Rust packages of its tree are marked ``prebuilt: true`` in
  ./overrides (no crates registry is reachable here, so they cannot be vendored);
  everything else is built from source.
- numpy: built from source with its meson build.
- torch: PyPI has no torch sdist; the shipped recipe names GitHub's release archive.
  Where that host is unreachable the run must stop with one message naming the URL.

Each tree reports wall time, exit status, wheels built, whether the import worked, and
the CPU it used: the run's own (every process it waited for, over wall time and cores)
and the machine's busy share in each tenth of the run (from /proc/stat, so other work on
the machine shows too). With ``--checkout DIR`` the bootstrapper of that source tree runs
(to measure a tree before and after a change on one machine).
These runs take minutes each: they are not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

#: The Rust (maturin / setuptools-rust) packages of langchain's tree.
LANGCHAIN_RUST = ("orjson", "pydantic-core", "jiter", "uuid-utils", "ormsgpack", "maturin")


@dataclass
class Outcome:
    tree: str
    status: int
    seconds: float
    wheels: int
    check: str
    usage: Usage = field(default_factory=lambda: Usage())


@dataclass
class Usage:
    """The CPU a run used: its processes' seconds, and the machine's busy share over time."""

    cpu_seconds: float = 0.0
    wall_seconds: float = 0.0
    busy: list[float] = field(default_factory=list)

    def describe(self) -> str:
        cores = os.cpu_count() or 1
        share = self.cpu_seconds / (self.wall_seconds * cores) if self.wall_seconds else 0.0
        tenths = " ".join(f"{100 * b:.0f}" for b in self.busy)
        return (
            f"CPU {self.cpu_seconds:.0f} s of the run's processes = {100 * share:.0f}% of "
            f"{cores} cores over the run; machine busy % by tenth of the run: {tenths}"
        )


def _cpu_times() -> tuple[int, int]:
    """Busy and total jiffies of all CPUs since boot."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


class BusySampler:
    """Samples the machine's CPU use every ``interval`` seconds while running."""

    def __init__(self, interval: float = 1.0) -> None:
        self._interval = interval
        self._samples: list[tuple[int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while True:
            self._samples.append(_cpu_times())
            if self._stop.wait(self._interval):
                self._samples.append(_cpu_times())
                return

    def __enter__(self) -> BusySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def tenths(self) -> list[float]:
        """The busy share in each tenth of the sampled time."""
        points = self._samples
        if len(points) < 11:
            return []
        out = []
        for i in range(10):
            a, b = points[i * (len(points) - 1) // 10], points[(i + 1) * (len(points) - 1) // 10]
            out.append((b[0] - a[0]) / max(1, b[1] - a[1]))
        return out


def clean_environment() -> dict[str, str]:
    """The user's environment without installer settings (this machine sets some)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}


#: The bootstrapper source tree to run (``--checkout``); None: the installed one.
CHECKOUT: Path | None = None
#: What the last bootstrap used.
LAST_USAGE = Usage()


def bootstrap(work: Path, requirements: list[str], jobs: int | None) -> tuple[int, float, str]:
    global LAST_USAGE
    args = [sys.executable, "-m", "bootstrapper", "bootstrap", *requirements]
    if jobs:
        args += ["--jobs", str(jobs)]
    env = dict(os.environ)
    if CHECKOUT is not None:
        env["PYTHONPATH"] = str(CHECKOUT)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    with BusySampler() as sampler:
        result = subprocess.run(
            args, cwd=work, env=env, capture_output=True, text=True, check=False
        )
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    LAST_USAGE = Usage(cpu, elapsed, sampler.tenths())
    (work / "bootstrap.stderr").write_text(result.stderr)
    return result.returncode, elapsed, result.stderr


def install_and_import(work: Path, requirement: str, module: str) -> str:
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    index = (work / "bootstrap-output" / "simple").as_uri() + "/"
    env = {**clean_environment(), "PIP_CONFIG_FILE": os.devnull}
    install = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "--index-url", index, requirement],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if install.returncode != 0:
        return "pip install failed: " + install.stderr.strip().splitlines()[-1]
    code = f"import {module}; print({module}.__name__, getattr({module}, '__version__', ''))"
    imported = subprocess.run(
        [str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, check=False
    )
    if imported.returncode != 0:
        return "import failed: " + imported.stderr.strip().splitlines()[-1]
    return "pip install + import OK: " + imported.stdout.strip()


def wheel_count(work: Path) -> int:
    return len(list((work / "bootstrap-output" / "wheels").glob("*.whl")))


def run_langchain(work: Path, jobs: int | None) -> Outcome:
    settings = work / "overrides" / "settings"
    settings.mkdir(parents=True, exist_ok=True)
    for name in LANGCHAIN_RUST:
        (settings / f"{name}.yaml").write_text(
            "# Rust: no crates registry reachable here to vendor its crates\nprebuilt: true\n"
        )
    status, seconds, _ = bootstrap(work, ["langchain"], jobs)
    check = install_and_import(work, "langchain", "langchain") if status == 0 else "-"
    return Outcome("langchain", status, seconds, wheel_count(work), check, LAST_USAGE)


def run_numpy(work: Path, jobs: int | None) -> Outcome:
    status, seconds, _ = bootstrap(work, ["numpy"], jobs)
    check = install_and_import(work, "numpy", "numpy") if status == 0 else "-"
    return Outcome("numpy", status, seconds, wheel_count(work), check, LAST_USAGE)


def run_torch(work: Path, jobs: int | None) -> Outcome:
    status, seconds, stderr = bootstrap(work, ["torch"], jobs)
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    clear = status == 1 and len(errors) == 1 and "pytorch-v" in errors[0]
    check = ("one clear error: " if clear else "UNEXPECTED: ") + (errors[0] if errors else stderr)
    return Outcome("torch", status, seconds, wheel_count(work), check, LAST_USAGE)


TREES = {"langchain": run_langchain, "numpy": run_numpy, "torch": run_torch}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "trees", nargs="*", metavar="TREE", help=f"{', '.join(TREES)} (default: all)"
    )
    parser.add_argument("--workdir", type=Path, default=Path("real-trees"))
    parser.add_argument("--jobs", type=int, default=None)
    parser.add_argument("--checkout", type=Path, help="a bootstrapper source tree to run")
    args = parser.parse_args()
    global CHECKOUT
    CHECKOUT = args.checkout.resolve() if args.checkout else None
    unknown = set(args.trees) - set(TREES)
    if unknown:
        parser.error(f"unknown tree(s): {', '.join(sorted(unknown))}")
    for tree in args.trees or TREES:
        work = (args.workdir / tree).absolute()
        work.mkdir(parents=True, exist_ok=True)
        print(f"== {tree} in {work}", file=sys.stderr, flush=True)
        outcome = TREES[tree](work, args.jobs)
        print(
            f"{outcome.tree}: exit {outcome.status} in {outcome.seconds:.0f}s, "
            f"{outcome.wheels} wheels; {outcome.check}\n  {outcome.usage.describe()}",
            flush=True,
        )


if __name__ == "__main__":
    main()
