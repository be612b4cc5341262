"""Real trees from PyPI, run the way their users run them: from a working directory, with
the default ./overrides and ./bootstrap-output, then installed with pip and imported.

    python benchmarks/real_trees.py [langchain] [numpy] [torch] [--workdir DIR] [--jobs N]

- langchain: the Rust packages of its tree are marked ``prebuilt: true`` in
  ./overrides (no crates registry is reachable here, so they cannot be vendored);
  everything else is built from source.
- numpy: built from source with its meson build.
- torch: PyPI has no torch sdist; the shipped recipe names GitHub's release archive.
  Where that host is unreachable the run must stop with one message naming the URL.

Each tree reports wall time, exit status, wheels built and whether the import worked.
These runs take minutes each: they are not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass
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


def clean_environment() -> dict[str, str]:
    """The user's environment without installer settings (this machine sets some)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}


def bootstrap(work: Path, requirements: list[str], jobs: int | None) -> tuple[int, float, str]:
    args = [sys.executable, "-m", "bootstrapper", "bootstrap", *requirements]
    if jobs:
        args += ["--jobs", str(jobs)]
    started = time.perf_counter()
    result = subprocess.run(args, cwd=work, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
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
    return Outcome("langchain", status, seconds, wheel_count(work), check)


def run_numpy(work: Path, jobs: int | None) -> Outcome:
    status, seconds, _ = bootstrap(work, ["numpy"], jobs)
    check = install_and_import(work, "numpy", "numpy") if status == 0 else "-"
    return Outcome("numpy", status, seconds, wheel_count(work), check)


def run_torch(work: Path, jobs: int | None) -> Outcome:
    status, seconds, stderr = bootstrap(work, ["torch"], jobs)
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    clear = status == 1 and len(errors) == 1 and "pytorch-v" in errors[0]
    check = ("one clear error: " if clear else "UNEXPECTED: ") + (errors[0] if errors else stderr)
    return Outcome("torch", status, seconds, wheel_count(work), check)


TREES = {"langchain": run_langchain, "numpy": run_numpy, "torch": run_torch}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "trees", nargs="*", metavar="TREE", help=f"{', '.join(TREES)} (default: all)"
    )
    parser.add_argument("--workdir", type=Path, default=Path("real-trees"))
    parser.add_argument("--jobs", type=int, default=None)
    args = parser.parse_args()
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
            f"{outcome.wheels} wheels; {outcome.check}",
            flush=True,
        )


if __name__ == "__main__":
    main()
