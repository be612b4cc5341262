"""CPU utilisation of a run with compiling packages, with one checkout against another.

    python benchmarks/core_budget.py [--before /work/main] [--targets 8] [--seconds 1]

Serves two sdists whose in-tree backend runs a real ``make`` over TARGETS CPU-bound
targets (each a busy loop of SECONDS), bootstraps them with ``--jobs 2`` using this
checkout ("after") and, with ``--before``, another one, and reports wall time, CPU time
of every process the run waited for (``--packages 1``: one compile alone), and
utilisation = CPU / (wall x cores). A make without ``-j`` (what a backend ran before
the core budget) keeps one core busy per build.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tests.support import FixtureIndex, Project  # noqa: E402

BACKEND = """
import os, subprocess, zipfile
def get_requires_for_build_wheel(config_settings=None):
    return []
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    name = os.path.basename(os.getcwd()).split("-")[0]
    targets = int(os.environ.get("BENCH_TARGETS", "{targets}"))
    busy = "import time; t = time.process_time(); " + \\
        "[0 for _ in iter(lambda: time.process_time() - t < {seconds}, False)]"
    rule = f"\\t@python3 -c '{{busy}}'\\n"
    names = " ".join(f"t{{i}}" for i in range(targets))
    with open("Makefile", "w") as f:
        f.write(f"all: {{names}}\\n{{names}}:\\n{{rule}}")
    subprocess.run(["make", "all"], check=True)
    dist = f"{{name}}-1.0"
    filename = f"{{name}}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, filename), "w") as zf:
        zf.writestr(f"{{dist}}.dist-info/METADATA",
                    f"Metadata-Version: 2.1\\nName: {{name}}\\nVersion: 1.0\\n")
        zf.writestr(f"{{dist}}.dist-info/WHEEL",
                    "Wheel-Version: 1.0\\nGenerator: bench\\nRoot-Is-Purelib: true\\n"
                    "Tag: py3-none-any\\n")
        zf.writestr(f"{{dist}}.dist-info/RECORD", "")
    return filename
"""


def project(name: str, targets: int, seconds: float) -> Project:
    pyproject = (
        '[build-system]\nrequires = []\nbuild-backend = "bench_backend"\n'
        'backend-path = ["_backend"]\n\n'
        f'[project]\nname = "{name}"\nversion = "1.0"\ndependencies = []\n'
    )
    return Project(
        name,
        pyproject=pyproject,
        pkg_info_version="2.2",
        build_requires=["x"],  # no in-tree fixture backend: ours is below
        files={"_backend/bench_backend.py": BACKEND.format(targets=targets, seconds=seconds)},
    )


def run(checkout: Path, index: FixtureIndex, out: Path, names: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds (of every process the run waited for) of one cold run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    subprocess.run(
        [sys.executable, "-m", "bootstrapper", "bootstrap", "-q", "--jobs", "2",
         "--index-url", index.url, "--output-dir", str(out), *names],
        check=True, env=env, cwd=checkout,
    )  # fmt: skip
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", type=Path, help="another checkout to compare with")
    parser.add_argument("--targets", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--packages", type=int, default=2, help="compiling packages (1-2)")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as tmp:
        index = FixtureIndex()
        names = ["busy-a", "busy-b"][: args.packages]
        for name in names:
            project_ = project(name, args.targets, args.seconds)
            index.add(project_, Path(tmp) / "sdists")
        index.start()
        try:
            checkouts = [("after", HERE.parent)]
            if args.before is not None:
                checkouts.insert(0, ("before", args.before.resolve()))
            for label, checkout in checkouts:
                wall, cpu = run(checkout, index, Path(tmp) / f"out-{label}", names)
                print(
                    f"{label:6} wall {wall:6.1f} s  cpu {cpu:6.1f} s  "
                    f"utilisation {cpu / (wall * cores):5.0%} of {cores} cores"
                )
        finally:
            index.stop()


if __name__ == "__main__":
    main()
