"""The blocking steps of building one package: unpack, ask the backend, build.

Each step writes to the package's log; the scheduler decides when the steps run.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import platform
import shutil
import threading
import time
import zipfile
import zlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Any, BinaryIO

from packaging.requirements import Requirement
from packaging.version import Version

from .archive import DEFAULT_UNPACK_LIMITS, UnpackLimits, unpack
from .buildenv import BuildEnv, EnvFactory
from .buildsystem import BuildSystem, beyond_declared, read_build_system
from .candidates import Release
from .cores import SHARE_VARIABLES, CoreBudget, Demand, Grant, demand_json, format_size
from .errors import BootstrapError, BuildError, VendoringError
from .fsutil import empty_dir, sha256_file
from .interpreters import Interpreter, current, probe
from .patches import AppliedPatch, Patch, apply_patches, find_patches
from .pep517 import Backend
from .plugins import PluginContext, Plugins
from .profiling import count, timed
from .records import BuildRecord, EnvWheel
from .reproducible import (
    BUILD_ROOT,
    FIXED_ENVIRONMENT,
    FLAG_VARIABLES,
    ZIP_EPOCH,
    compiler_maps_paths,
    normalize_wheel,
    path_map_flags,
    source_date_epoch,
)
from .sandbox import Sandbox, TimeLimit, make_scratch, sandbox_environ
from .settings import PackageSettings, Settings
from .vendoring import (
    RUST_BUILD_TOOLS,
    VendoredCrates,
    VendoredSdist,
    builds_rust,
    read_marker,
    vendor_crates,
    write_vendored_sdist,
)
from .wheeledit import WheelEdit, edit_wheel

LOG_TAIL_LINES = 25
#: The per-package directories of a work dir, removed once a package is stored.
SCRATCH_PARTS = ("src", "out", "envs", "scratch")
#: Bumped when the way wheels are made changes, so that earlier builds are not reused
#: (3: wheels carry their SBOM, see :mod:`.sbom.wheel`).
BUILD_RECIPE = 3
#: Backend hosts kept between a package's hooks at most: each is an idle interpreter
#: with its backend imported, so they are few (a package's hooks mostly follow in a row).
MAX_KEPT_HOSTS = 8


@dataclass(frozen=True)
class SourceTree:
    path: Path
    build_system: BuildSystem
    #: SOURCE_DATE_EPOCH for builds of this source (from the archive, so stable).
    epoch: int = ZIP_EPOCH
    #: How the patches applied (hunks moved or fitted with fuzz), for the build record.
    patches: tuple[AppliedPatch, ...] = ()
    #: The Rust crates vendored into the source (now, or in the archive it came from).
    vendored: VendoredCrates | None = None
    #: The vendored sdist this preparation wrote: the archive to keep and record instead
    #: of the upstream one.
    archive: VendoredSdist | None = None
    #: Why crates could not be vendored, for a package that names no Rust build tool
    #: (its build may not need them; if it fails, this says what to do).
    vendoring_error: VendoringError | None = None


@dataclass(frozen=True)
class BuildPlan:
    """What the settings and patches say about building one package version."""

    settings: PackageSettings
    patches: tuple[Patch, ...]
    env: Mapping[str, str]
    edit: WheelEdit
    variant: str | None = None

    def fingerprint(self, version: Version) -> dict[str, Any]:
        """Everything of the plan that a build record keeps and a re-run compares."""
        return {
            "recipe": BUILD_RECIPE,
            "settings": self.settings.to_json(version),
            "patches": [p.to_json() for p in self.patches],
            "env": dict(self.env),
            "variant": self.variant,
        }


@dataclass(frozen=True, eq=False)
class _KeptHost:
    """A package's backend host between its hooks, and what it was started for."""

    backend: Backend
    tree: SourceTree
    env: Path
    wheels: tuple[str, ...]
    log: BinaryIO

    def serves(
        self, tree: SourceTree, env: BuildEnv, wheels: Sequence[Path], log: BinaryIO
    ) -> bool:
        """Whether a hook of ``tree`` in ``env`` may go to this host: the same unpacked
        tree (not one unpacked again: the host's mounts show the old directory), the
        same environment, the same log."""
        return (
            self.tree is tree
            and self.env == env.path
            and self.wheels == _wheel_key(wheels)
            and self.log is log
        )


def _wheel_key(wheels: Sequence[Path]) -> tuple[str, ...]:
    return tuple(sorted(str(w) for w in wheels))


def _tail_of(path: Path) -> str | None:
    tail = log_tail(path)
    return "last lines of the build log:\n" + tail if tail else None


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def tool_versions() -> dict[str, str]:
    """The versions of the tools that made a wheel, for its record (a copy: the caller
    may change it)."""
    return dict(_tool_versions())


@functools.cache
def _tool_versions() -> dict[str, str]:
    # Asked once a process: reading the installed distributions' metadata takes about a
    # millisecond, which every build record paid.
    versions = {"python": platform.python_version()}
    for dist in ("bootstrapper", "uv"):
        try:
            versions[dist] = installed_version(dist)
        except Exception:
            versions[dist] = "unknown"
    return versions


class PackageBuilder:
    """Runs the build steps for packages, each in its own work directory and log."""

    def __init__(
        self,
        work_dir: Path,
        logs_dir: Path,
        envs: EnvFactory,
        plugins: Plugins | None = None,
        *,
        isolation: Sequence[str] = (),
        sandbox: Sandbox | None = None,
        unpack_limits: UnpackLimits = DEFAULT_UNPACK_LIMITS,
        cores: CoreBudget | None = None,
        suffix: str = "",
    ) -> None:
        self._work = work_dir
        #: Its spellings compilers are told to map: as given, and as their working
        #: directory reads it (without symbolic links).
        self._work_spellings = (work_dir, work_dir.resolve())
        #: Ends the name of each log and work directory: the interpreter's, when a run
        #: builds for several (one version is then built once for each).
        self._suffix = suffix
        #: The run's core budget (None: the backend's tools choose their own parallelism).
        self.cores = cores
        self.sandbox = sandbox or Sandbox()
        self._unpack_limits = unpack_limits
        self.logs_dir = logs_dir
        self._envs = envs
        self._plugins = plugins or Plugins()
        self._isolation = list(isolation)
        self._env_contents: dict[Path, tuple[Path, ...]] = {}
        #: Shared environments (see :meth:`_shared_env`): made in this builder's life,
        #: by content key; how many steps use each now; a lock per key.
        self._shared: dict[str, BuildEnv] = {}
        self._shared_users: dict[str, int] = {}
        self._shared_locks: dict[str, threading.Lock] = {}
        self._shared_lock = threading.Lock()
        #: The backend host of each package kept between its hooks (see _backend),
        #: most recently kept last.
        self._hosts: dict[str, _KeptHost] = {}
        self._hosts_lock = threading.Lock()

    def log_path(self, release: Release) -> Path:
        return self.logs_dir / f"{self._own(release)}.log"

    def _own(self, release: Release) -> str:
        """What names a package's own directories and log."""
        return f"{release.name}-{release.version}{self._suffix}"

    @functools.cached_property
    def interpreter(self) -> Interpreter:
        """The interpreter this builder's environments are made with."""
        return probe(Path(self._envs.python))

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
            if e.details is None:
                e.details = _tail_of(self.log_path(release))
            raise

    def prepare(self, release: Release, sdist: Path, plan: BuildPlan, log: BinaryIO) -> SourceTree:
        """Unpack the sdist into a fresh directory, apply the patches (before anything
        is read from it, so a patch may change the build requirements) and read its
        build system, with the settings' build-requires edits applied."""
        log.write(f"== unpacking {sdist.name}\n".encode())
        with timed("unpacking"):
            root = unpack(
                sdist,
                self._own_dir("src", release),
                self._unpack_limits,
            )
        applied: tuple[AppliedPatch, ...] = ()
        if plan.patches:
            log.write(f"== applying {len(plan.patches)} patch(es)\n".encode())
            patched = apply_patches(
                root, plan.patches, fuzz=plan.settings.patch_fuzz, package=str(release.name)
            )
            log.write(patched.log.encode())
            applied = patched.applied
        if self._plugins.hook(release.name, "prepare_source"):
            log.write(b"== plugin: prepare_source\n")
            self._plugins.call(
                release.name, "prepare_source", self.context(release, plan, log=log), root
            )
        epoch = source_date_epoch(sdist)
        build_system = read_build_system(root, str(release.name))
        edits = plan.settings.build_requires
        if edits:
            declared = [str(r) for r in build_system.requires]
            log.write(f"build-system requires as declared: {declared}\n".encode())
            build_system = dataclasses.replace(
                build_system, requires=edits.apply(build_system.requires)
            )
        vendoring_error: VendoringError | None = None
        try:
            vendored, archive = self._vendor(release, sdist, root, plan, epoch, log)
        except VendoringError as e:
            if builds_rust(build_system):
                raise
            # zstandard ships the Cargo.toml of an optional Rust backend it does not build
            # by default: go on, and say why if the build then fails.
            log.write(
                f"note: {e.message}; {release.name} names no Rust build tool "
                f"({', '.join(sorted(RUST_BUILD_TOOLS))}), so its build goes on without "
                "vendored crates\n".encode()
            )
            vendored, archive, vendoring_error = None, None, e
        log.write(
            f"build backend: {build_system.backend}\n"
            f"build-system requires: {[str(r) for r in build_system.requires]}\n"
            f"SOURCE_DATE_EPOCH={epoch}\n".encode()
        )
        return SourceTree(root, build_system, epoch, applied, vendored, archive, vendoring_error)

    @property
    def vendored_dir(self) -> Path:
        """Where vendored sdists are kept until they are archived."""
        return self._work / "vendored"

    def _vendor(
        self,
        release: Release,
        sdist: Path,
        root: Path,
        plan: BuildPlan,
        epoch: int,
        log: BinaryIO,
    ) -> tuple[VendoredCrates | None, VendoredSdist | None]:
        """Vendor the tree's Rust crates (with network, before the isolated build) and
        write the vendored sdist; nothing when the archive was vendored already."""
        already = read_marker(root)
        if already is not None:
            log.write(
                f"== Rust crates vendored already ({len(already.crates)} crates, from "
                f"{already.upstream}): cargo builds offline\n".encode()
            )
            return already, None
        vendored = vendor_crates(
            root,
            package=str(release.name),
            sdist=sdist,
            log=log,
            environ={**os.environ, **plan.env},
        )
        if vendored is None:
            return None, None
        archive = write_vendored_sdist(
            sdist, root, self.vendored_dir / sdist.name, epoch, vendored.directory
        )
        log.write(
            f"wrote the vendored sdist {archive.path.name} (sha256 {archive.sha256}; "
            f"upstream sha256 {vendored.upstream_sha256})\n".encode()
        )
        return vendored, archive

    @contextmanager
    def _env(
        self, release: Release, wheels: Sequence[Path], log: BinaryIO, *, shared: bool = True
    ) -> Iterator[BuildEnv]:
        """A build env of exactly ``wheels`` for the block. Under the read-only view the
        env is shared by every build of the same wheel set (a build cannot change it);
        otherwise each package has its own, reused for the build when the backend asked
        for nothing more than the discovery env holds."""
        if not (shared and self.sandbox.readonly_view):
            yield self._own_env(release, wheels, log)
            return
        key = self._env_key(wheels)
        with self._shared_lock:
            self._shared_users[key] = self._shared_users.get(key, 0) + 1
            lock = self._shared_locks.setdefault(key, threading.Lock())
        try:
            with lock:
                env = self._shared.get(key)
                if env is not None:
                    log.write(
                        f"\n== build environment {env.path.name} (shared, as made for "
                        f"{[w.name for w in wheels]})\n".encode()
                    )
                    count("environments reused")
                else:
                    log.write(
                        f"\n== build environment {key}: {[w.name for w in wheels]}\n".encode()
                    )
                    with timed("environments"):
                        env = self._envs.create(self._work / "envs" / ".shared" / key, wheels, log)
                    self._shared[key] = env
            yield env
        finally:
            with self._shared_lock:
                self._shared_users[key] -= 1

    def _env_key(self, wheels: Sequence[Path]) -> str:
        """The content address of an env of ``wheels``: the interpreter and the sorted
        sha256 of the wheels (so the same files under other names share it too)."""
        digest = hashlib.sha256(self._envs.python.encode())
        for sha256 in sorted(sha256_file(w) for w in wheels):
            digest.update(b"\n" + sha256.encode())
        return "set-" + digest.hexdigest()[:24]

    def close(self, *, keep_work: bool = False) -> None:
        """End the backend hosts still kept, and remove the shared build environments
        no step uses any more (all of them once the builds are over), unless the work
        is kept."""
        with self._hosts_lock:
            kept, self._hosts = list(self._hosts.values()), {}
        for host in kept:
            host.backend.close()
        if keep_work:
            return
        with self._shared_lock:
            idle = [key for key in self._shared if self._shared_users.get(key, 0) == 0]
            for key in idle:
                env = self._shared.pop(key)
                shutil.rmtree(env.path, ignore_errors=True)

    def _own_env(self, release: Release, wheels: Sequence[Path], log: BinaryIO) -> BuildEnv:
        path = self._own_dir("envs", release)
        wanted = tuple(wheels)
        if self._env_contents.get(path) == wanted:
            log.write(b"\n== reusing the build environment\n")
            return BuildEnv.at(path)
        log.write(f"\n== build environment: {[w.name for w in wheels]}\n".encode())
        self._env_contents.pop(path, None)
        with timed("environments"):
            env = self._envs.create(path, wheels, log)
        self._env_contents[path] = wanted
        return env

    @contextmanager
    def _asking(
        self,
        release: Release,
        tree: SourceTree,
        wheels: Sequence[Path],
        plan: BuildPlan,
        log: BinaryIO,
    ) -> Iterator[Backend]:
        """The backend in an env of ``wheels``, for a question (its requirements, its
        metadata): that compiles nothing as a rule, so it takes one core of the budget,
        never the whole machine."""
        with (
            self._env(release, wheels, log) as env,
            self.lease(Demand(), log, light=True) as grant,
            self._backend(release, tree, env, wheels, plan, log, grant) as backend,
        ):
            yield backend

    def discover(
        self,
        release: Release,
        tree: SourceTree,
        wheels: Sequence[Path],
        plan: BuildPlan,
        log: BinaryIO,
    ) -> list[Requirement]:
        """The backend's own build requirements, asked in an env of ``wheels``."""
        with self._asking(release, tree, wheels, plan, log) as backend:
            found = backend.requires_for_build_wheel()
            if beyond_declared(tree.build_system, found):
                # The next hooks run in a bigger environment, after its builds: not here.
                backend.close()
        log.write(f"backend requires: {[str(r) for r in found]}\n".encode())
        return found

    def prepare_metadata(
        self,
        release: Release,
        tree: SourceTree,
        wheels: Sequence[Path],
        plan: BuildPlan,
        log: BinaryIO,
    ) -> bytes | None:
        """The wheel's METADATA from the backend's ``prepare_metadata_for_build_wheel``,
        asked in the build env of ``wheels``; None when the backend has no such hook."""
        metadata_dir = self.scratch_dir(release) / "metadata"
        shutil.rmtree(metadata_dir, ignore_errors=True)
        with self._asking(release, tree, wheels, plan, log) as backend:
            return backend.prepare_metadata(metadata_dir)

    def build(
        self,
        release: Release,
        tree: SourceTree,
        wheels: Sequence[Path],
        plan: BuildPlan,
        log: BinaryIO,
        grant: Grant | None = None,
        dist_info_files: Mapping[str, bytes] | None = None,
    ) -> Path:
        """Build the wheel in an env of exactly ``wheels`` and apply the plan's wheel
        edits; returns it (in a scratch dir). ``grant``: the cores leased for it;
        ``dist_info_files``: files to add to its ``.dist-info`` (by path there)."""
        out = self.out_dir(release)
        # Emptied, not replaced: a backend host kept from the package's earlier hooks
        # may see this very directory through a mount of its own.
        empty_dir(out)
        wheel_dir = out / "backend"
        wheel_dir.mkdir(parents=True)
        # A plugin's build runs outside the sandbox and could change a shared env.
        shared = not self._plugins.hook(release.name, "build_wheel")
        try:
            with self._env(release, wheels, log, shared=shared) as env:
                wheel, from_plugin = self._make_wheel(
                    release, tree, env, wheels, plan, log, wheel_dir, grant
                )
        finally:
            self.end_backend(release)
        try:
            if not plan.edit.is_empty:
                wheel = edit_wheel(wheel, out, plan.edit)
                log.write(f"== rewrote it as {wheel.name} (requires and rebuild number)\n".encode())
            normalize_wheel(wheel, tree.epoch, dist_info_files)
        except (zipfile.BadZipFile, zlib.error, EOFError, ValueError) as e:
            maker = "the plugin" if from_plugin else "the build backend"
            why = str(e) if isinstance(e, ValueError) else f"not a readable zip file ({e})"
            log.write(f"== {wheel.name} is not a wheel: {why}\n".encode())
            raise BuildError(
                f"{release.name}: {maker} wrote {wheel.name}, which is not a wheel: {why}",
                package=release.name,
            ) from None
        return wheel

    def _make_wheel(
        self,
        release: Release,
        tree: SourceTree,
        env: BuildEnv,
        wheels: Sequence[Path],
        plan: BuildPlan,
        log: BinaryIO,
        wheel_dir: Path,
        grant: Grant | None,
    ) -> tuple[Path, bool]:
        """The wheel the plugin or the backend wrote, and whether a plugin wrote it."""
        context = self.context(release, plan, log=log, python=env.python)
        from_plugin = self._plugins.call(release.name, "build_wheel", context, tree.path, wheel_dir)
        if from_plugin is not None:
            wheel = Path(from_plugin)
            log.write(f"\n== the plugin built {wheel.name}\n".encode())
            return wheel, True
        try:
            with self._backend(release, tree, env, wheels, plan, log, grant, last=True) as backend:
                wheel = backend.build_wheel(wheel_dir)
        except BootstrapError as e:
            if tree.vendoring_error is not None:
                e.details = "\n".join(
                    filter(
                        None,
                        [
                            e.details or _tail_of(self.log_path(release)),
                            f"note: {tree.vendoring_error.message}",
                            tree.vendoring_error.details,
                        ],
                    )
                )
            raise
        log.write(f"\n== built {wheel.name}\n".encode())
        return wheel, False

    def context(
        self,
        release: Release,
        plan: BuildPlan,
        *,
        log: BinaryIO | None = None,
        python: Path | None = None,
    ) -> PluginContext:
        """What a plugin hook is told about the package it works on."""

        def write(text: str) -> None:
            if log is not None:
                log.write(text.encode() + (b"" if text.endswith("\n") else b"\n"))

        return PluginContext(
            name=release.name,
            version=release.version,
            settings=plan.settings,
            work_dir=self._work,
            env=plan.env,
            python=python,
            log=write,
        )

    def take_prebuilt(self, release: Release, wheel: Path, plan: BuildPlan, log: BinaryIO) -> Path:
        """The upstream wheel, with the plan's wheel edits applied (in a scratch dir)."""
        out = self.out_dir(release)
        out.mkdir(parents=True, exist_ok=True)
        if plan.edit.is_empty:
            return wheel
        edited = edit_wheel(wheel, out, plan.edit)
        log.write(f"== rewrote it as {edited.name} (requires and rebuild number)\n".encode())
        return edited

    def path_map(self, plan: BuildPlan) -> tuple[Path, ...]:
        """The work directory, as given and without symbolic links, which compilers are
        told to record as another path; none where the C compiler cannot be told (``CC``
        of the settings' ``env`` or ours, else ``cc``)."""
        compiler = plan.env.get("CC") or os.environ.get("CC") or "cc"
        return self._work_spellings if compiler_maps_paths(compiler) else ()

    def out_dir(self, release: Release) -> Path:
        """Where the package's wheel is made (and a wheel built elsewhere is received)."""
        return self._own_dir("out", release)

    def _own_dir(self, part: str, release: Release) -> Path:
        """The package's own directory in ``part`` (one of SCRATCH_PARTS) of the work dir."""
        return self._work / part / self._own(release)

    def scratch_dir(self, release: Release) -> Path:
        """The package's own HOME and TMPDIR live here during its build."""
        return self._own_dir("scratch", release)

    def time_limit(self, settings: PackageSettings) -> TimeLimit:
        """The package's ``build-timeout`` where its settings have one, else the run's."""
        if settings.build_timeout is not None:
            return TimeLimit(settings.build_timeout, settings.build_timeout_origin)
        return TimeLimit(self.sandbox.timeout, self.sandbox.timeout_origin)

    def _writable(self, release: Release, scratch: Path) -> list[Path]:
        """What a backend may write under a read-only view: the unpacked source (most
        backends build in the tree), where the wheel goes, and its HOME and TMPDIR. The
        build environment is not among them: a build must not change it."""
        writable = [self._own_dir("src", release), self.out_dir(release), scratch]
        for path in writable:
            path.mkdir(parents=True, exist_ok=True)
        return writable

    @contextmanager
    def lease(
        self, demand: Demand, log: BinaryIO, *, light: bool = False
    ) -> Iterator[Grant | None]:
        """The cores of the run's budget for one backend call (None without a budget),
        logged; waits first where ``demand`` needs it."""
        if self.cores is None:
            yield None
            return
        if demand != Demand() or self.cores.running():
            log.write(f"== waiting for cores ({demand_text(demand)})\n".encode())
        makeflags = os.environ.get("MAKEFLAGS")
        with self.cores.lease(demand, user_makeflags=makeflags, light=light) as grant:
            log.write(f"== {grant.describe()}\n".encode())
            yield grant

    @contextmanager
    def _backend(
        self,
        release: Release,
        tree: SourceTree,
        env: BuildEnv,
        wheels: Sequence[Path],
        plan: BuildPlan,
        log: BinaryIO,
        grant: Grant | None,
        *,
        last: bool = False,
    ) -> Iterator[Backend]:
        """The backend of ``tree`` in ``env``, its variables those of ``grant``: the host
        process that answered the package's previous hook when that ran in the same tree
        and environment, else a new one. Unless this is the ``last`` hook (or it fails),
        the host is kept for the next."""
        own = self._own(release)
        extra = build_environment(
            plan,
            tree.epoch,
            cargo_offline=bool(tree.vendored),
            cores=grant.variables if grant is not None else {},
            path_map=self.path_map(plan),
            inherited=os.environ,
        )
        with self._hosts_lock:
            kept = self._hosts.pop(own, None)
        if kept is not None and kept.serves(tree, env, wheels, log):
            backend = kept.backend
            log.write(f"\n== the same backend process (pid {backend.pid}) answers\n".encode())
        else:
            if kept is not None:
                kept.backend.close()
            backend = self._new_backend(release, tree, env, plan, log)
            kept = _KeptHost(backend, tree, env.path, _wheel_key(wheels), log)
        jobs = grant.build_ext_jobs() if grant is not None else None
        if jobs is not None and plan.env.keys() & {"DIST_EXTRA_CONFIG", *SHARE_VARIABLES}:
            jobs = None  # the package's settings fix its number of jobs
        backend.use_environ(extra, build_ext=jobs)
        try:
            yield backend
        except BaseException:
            backend.close()
            raise
        if last or backend.pid is None:
            backend.close()
            return
        with self._hosts_lock:
            self._hosts[own] = kept
            idle = list(self._hosts)[:-MAX_KEPT_HOSTS]
            evicted = [self._hosts.pop(key) for key in idle]
        for host in evicted:
            host.backend.close()

    def _new_backend(
        self, release: Release, tree: SourceTree, env: BuildEnv, plan: BuildPlan, log: BinaryIO
    ) -> Backend:
        if plan.env:
            log.write(f"environment from settings: {dict(plan.env)}\n".encode())
        scratch = make_scratch(self.scratch_dir(release))
        limit = self.time_limit(plan.settings)
        log.write(
            f"HOME and TMPDIR in {scratch}; passed from the environment by --pass-env: "
            f"{list(self.sandbox.pass_env)}; build timeout {limit.describe()}\n".encode()
        )
        if self.path_map(plan):
            log.write(
                f"compilers record {self._work} as {BUILD_ROOT} (-ffile-prefix-map in "
                "CPPFLAGS)\n".encode()
            )
        writable = self._writable(release, scratch) if self.sandbox.readonly_view else None
        if writable is not None:
            log.write(
                f"read-only view of the machine but for {[str(p) for p in writable]}\n".encode()
            )
        return Backend(
            tree.path,
            tree.build_system,
            env,
            log,
            package=release.name,
            exchange_dir=scratch / "hooks",
            config_settings=plan.settings.config_settings,
            command_prefix=self._isolation,
            base_environ=sandbox_environ(os.environ, scratch, self.sandbox.pass_env),
            time_limit=limit,
            writable=writable,
        )

    def end_backend(self, release: Release) -> None:
        """End the backend host kept for ``release``, if any."""
        with self._hosts_lock:
            kept = self._hosts.pop(self._own(release), None)
        if kept is not None:
            kept.backend.close()

    def cleanup(self, release: Release) -> None:
        """Remove the work directories of ``release`` (the built wheel is stored already)."""
        self.end_backend(release)
        self._env_contents.pop(self._own_dir("envs", release), None)
        for part in SCRATCH_PARTS:
            shutil.rmtree(self._own_dir(part, release), ignore_errors=True)


def make_plan(
    settings: Settings, patch_layers: Sequence[Path], variant: str | None, release: Release
) -> BuildPlan:
    """What the settings and patches say about building ``release``."""
    package = settings.for_package(release.name, variant)
    try:
        env = package.expanded_env(release.version, os.environ)
    except BootstrapError as e:
        e.package = release.name
        raise
    return BuildPlan(
        settings=package,
        patches=tuple(find_patches(patch_layers, release.name, release.version, variant)),
        env=env,
        edit=package.wheel_edit(release.version),
        variant=variant,
    )


def build_environment(
    plan: BuildPlan,
    epoch: int,
    *,
    cargo_offline: bool = False,
    cores: Mapping[str, str] | None = None,
    path_map: Sequence[Path] = (),
    inherited: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The variables bootstrapper sets for a build (on top of a cleaned environment);
    cargo is kept offline where the crates were vendored, whatever its configuration.
    ``cores``: the variables of the build's core grant; the settings' ``env`` wins over
    them (a package's own ``MAX_JOBS``), and they win over the user's environment.
    ``path_map``: the work directory's paths compilers record as ``/bootstrapper-build``;
    the ``CPPFLAGS`` of the settings' ``env``, else of the user's environment
    (``inherited``), follow that flag."""
    offline = {"CARGO_NET_OFFLINE": "true"} if cargo_offline else {}
    flags: dict[str, str] = {}
    if path_map:
        theirs = {k: v for k, v in (inherited or {}).items() if k in FLAG_VARIABLES}
        flags = path_map_flags(path_map, {**theirs, **plan.env})
    return {
        **FIXED_ENVIRONMENT,
        "SOURCE_DATE_EPOCH": str(epoch),
        **offline,
        **(cores or {}),
        **plan.env,
        **flags,
    }


def demand_text(demand: Demand) -> str:
    if demand.exclusive:
        return "exclusive: the whole machine, once nothing else runs"
    parts = [f"{demand.cores} cores" if demand.cores is not None else "one core at least"]
    if demand.memory is not None:
        parts.append(f"{format_size(demand.memory)} of memory")
    return ", ".join(parts)


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
    plan: BuildPlan,
    epoch: int | None = None,
    plan_json: dict[str, Any] | None = None,
    patches_applied: Sequence[AppliedPatch] = (),
    vendored: VendoredCrates | None = None,
    pass_env: Sequence[str] = (),
    python: str | None = None,
    finished: str | None = None,
    grant: Grant | None = None,
) -> BuildRecord:
    """The record of a build. ``sdist`` is the archive built from: with ``vendored``
    crates, the vendored sdist (the upstream hash is kept beside it). ``finished``
    defaults to now."""
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
        python=python or current().description,
        tool_versions=tool_versions(),
        started=started,
        finished=finished or now(),
        log=os.fspath(log),
        plan=plan_json if plan_json is not None else plan.fingerprint(release.version),
        rebuild=plan.edit.rebuild,
        environment=(
            build_environment(plan, epoch, cargo_offline=vendored is not None)
            if epoch is not None
            else dict(plan.env)
        ),
        upstream_sha256=vendored.upstream_sha256 if vendored is not None else sdist_sha256,
        vendored=vendored.to_json() if vendored is not None else {},
        patches_applied=[p.to_json() for p in patches_applied],
        pass_env=sorted(pass_env),
        resources=dict(plan.settings.resources),
        cores=(
            grant.to_json()
            if grant is not None
            else {"settings": demand_json(plan.settings.demand())}
            if plan.settings.demand() != Demand()
            else {}
        ),
    )
