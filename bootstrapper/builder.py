"""The blocking steps of building one package: unpack, ask the backend, build.

Each step writes to the package's log; the scheduler decides when the steps run.
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import BinaryIO

from packaging.requirements import Requirement

from .archive import unpack
from .buildenv import BuildEnv, EnvFactory
from .buildsystem import BuildSystem, read_build_system
from .candidates import Release
from .errors import BootstrapError
from .pep517 import Backend
from .records import BuildRecord, EnvWheel

LOG_TAIL_LINES = 25


@dataclass(frozen=True)
class SourceTree:
    path: Path
    build_system: BuildSystem


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def tool_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for dist in ("bootstrapper", "uv", "pyproject_hooks"):
        try:
            versions[dist] = installed_version(dist)
        except Exception:
            versions[dist] = "unknown"
    return versions


class PackageBuilder:
    """Runs the build steps for packages, each in its own work directory and log."""

    def __init__(self, work_dir: Path, logs_dir: Path, envs: EnvFactory) -> None:
        self._work = work_dir
        self.logs_dir = logs_dir
        self._envs = envs
        self._env_contents: dict[Path, tuple[Path, ...]] = {}

    def log_path(self, release: Release) -> Path:
        return self.logs_dir / f"{release.name}-{release.version}.log"

    @contextmanager
    def log(self, release: Release, *, fresh: bool = False) -> Iterator[BinaryIO]:
        path = self.log_path(release)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb" if fresh else "ab", buffering=0) as log:
            yield log

    @contextmanager
    def step(self, release: Release, log: BinaryIO) -> Iterator[None]:
        """Attach the package and log path to any failure inside the step."""
        try:
            yield
        except BootstrapError as e:
            e.package = e.package or str(release.name)
            e.log_path = e.log_path or self.log_path(release)
            if e.details is None and isinstance(e, BootstrapError):
                tail = log_tail(self.log_path(release))
                if tail:
                    e.details = "last lines of the build log:\n" + tail
            raise

    def prepare(self, release: Release, sdist: Path, log: BinaryIO) -> SourceTree:
        """Unpack the sdist into a fresh directory and read its build system."""
        log.write(f"== unpacking {sdist.name}\n".encode())
        root = unpack(sdist, self._work / "src" / f"{release.name}-{release.version}")
        build_system = read_build_system(root, str(release.name))
        log.write(
            f"build backend: {build_system.backend}\n"
            f"build-system requires: {[str(r) for r in build_system.requires]}\n".encode()
        )
        return SourceTree(root, build_system)

    def _env(self, release: Release, wheels: Sequence[Path], log: BinaryIO) -> BuildEnv:
        """A build env of exactly ``wheels``; the discovery env is reused for the build
        when the backend asked for nothing more."""
        path = self._work / "envs" / f"{release.name}-{release.version}"
        wanted = tuple(wheels)
        if self._env_contents.get(path) == wanted:
            log.write(b"\n== reusing the build environment\n")
            return BuildEnv.at(path)
        log.write(f"\n== build environment: {[w.name for w in wheels]}\n".encode())
        self._env_contents.pop(path, None)
        env = self._envs.create(path, wheels, log)
        self._env_contents[path] = wanted
        return env

    def discover(
        self, release: Release, tree: SourceTree, wheels: Sequence[Path], log: BinaryIO
    ) -> list[Requirement]:
        """The backend's own build requirements, asked in an env of ``wheels``."""
        env = self._env(release, wheels, log)
        backend = Backend(tree.path, tree.build_system, env, log, package=release.name)
        found = backend.requires_for_build_wheel()
        log.write(f"backend requires: {[str(r) for r in found]}\n".encode())
        return found

    def build(
        self, release: Release, tree: SourceTree, wheels: Sequence[Path], log: BinaryIO
    ) -> Path:
        """Build the wheel in an env of exactly ``wheels``; returns it (in a scratch dir)."""
        env = self._env(release, wheels, log)
        out = self._work / "out" / f"{release.name}-{release.version}"
        if out.exists():
            shutil.rmtree(out)
        backend = Backend(tree.path, tree.build_system, env, log, package=release.name)
        wheel = backend.build_wheel(out)
        log.write(f"\n== built {wheel.name}\n".encode())
        return wheel

    def cleanup(self, release: Release) -> None:
        """Remove the work directories of ``release`` (the built wheel is stored already)."""
        self._env_contents.pop(self._work / "envs" / f"{release.name}-{release.version}", None)
        for part in ("src", "out", "envs"):
            shutil.rmtree(
                self._work / part / f"{release.name}-{release.version}", ignore_errors=True
            )


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def make_record(
    *,
    release: Release,
    wheel: Path,
    wheel_sha256: str,
    sdist: Path,
    sdist_sha256: str,
    build_system: BuildSystem,
    backend_requires: Sequence[Requirement],
    discovery_env: Sequence[EnvWheel],
    build_env: Sequence[EnvWheel],
    started: str,
    log: Path,
) -> BuildRecord:
    return BuildRecord(
        name=release.name,
        version=str(release.version),
        wheel=wheel.name,
        wheel_sha256=wheel_sha256,
        sdist=sdist.name,
        sdist_sha256=sdist_sha256,
        source_url=release.sdist.url,
        build_backend=build_system.backend,
        build_system_requires=tuple(str(r) for r in build_system.requires),
        backend_requires=tuple(str(r) for r in backend_requires),
        discovery_env=tuple(discovery_env),
        build_env=tuple(build_env),
        python=f"{sys.implementation.name} {platform.python_version()} ({sys.platform}, "
        f"{platform.machine()})",
        tool_versions=tool_versions(),
        started=started,
        finished=now(),
        log=os.fspath(log),
    )
