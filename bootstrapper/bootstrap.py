"""The bootstrap run: resolve, build bottom-up with bounded concurrency, publish, record.

Scheduling is asyncio on one thread; every blocking step (HTTP, resolution, subprocesses)
runs in a worker thread. Each package version is built at most once per run: its task is
memoized, and a "waits-for" graph between tasks turns a build cycle into an error
instead of a deadlock.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import os
import shutil
import sys
import threading
from collections.abc import Callable, Mapping, Sequence, Set
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import networkx as nx
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.tags import sys_tags
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from .archive import DEFAULT_UNPACK_LIMITS, UnpackLimits
from .buildenv import EnvFactory
from .builder import (
    SCRATCH_PARTS,
    BuildPlan,
    PackageBuilder,
    SourceTree,
    make_plan,
    make_record,
    now,
)
from .buildsystem import BuildSystem
from .candidates import Release, allowed
from .errors import BootstrapError, BuildCycleError, MetadataMismatchError
from .failures import (
    FALLBACK_PREBUILT,
    FailureLog,
    RunReport,
    make_report,
    plan_publication,
    remove_report,
    write_report,
)
from .finder import IndexFinder
from .fsutil import (
    atomic_copy,
    atomic_write_text,
    copy_unless_identical,
    sha256_file,
    sweep_temporary_files,
)
from .graph import DependencyGraph, EdgeKind, Node, NodeKey
from .http import HttpClient
from .index import PYPI_SIMPLE, IndexClient
from .installcheck import check_installable
from .metadata import CoreMetadata, parse_metadata, requirement_key
from .metasource import MetadataOracle
from .outputs import write_outputs
from .patches import archived_patch
from .plugins import Plugins
from .progress import NullReporter, Reporter
from .publish import IndexWriter, SourceIndexWriter
from .records import BuildRecord, EnvWheel
from .resolve import Resolution, resolve
from .sandbox import Sandbox
from .settings import Settings, expand
from .sources import SourceStore, fetch_git, fetch_url
from .store import WheelStore
from .wheelfile import read_wheel_metadata

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: How often a set is re-resolved after built wheels contradicted the metadata used.
MAX_RESOLVE_ROUNDS = 5
#: Seconds between checks, by a thread waiting on the run's loop, that the run goes on.
RUN_OVER_POLL = 0.5


@dataclass(frozen=True)
class Options:
    output_dir: Path
    index_url: str = PYPI_SIMPLE
    jobs: int = max(1, os.cpu_count() or 1)
    allow_prereleases: bool = False
    keep_work: bool = False
    variant: str | None = None
    #: The command prefix that cuts a build off the network (empty: builds have network).
    isolation: tuple[str, ...] = ()
    #: Build whatever does not depend on a failure; publish the closures that succeeded.
    keep_going: bool = False
    #: With keep_going: a package that cannot be built takes the index's wheel instead.
    fallback_prebuilt: bool = False
    #: The environment and time limit of every backend call.
    sandbox: Sandbox = field(default_factory=Sandbox)
    #: How much one source archive may unpack to.
    unpack_limits: UnpackLimits = DEFAULT_UNPACK_LIMITS


@dataclass(frozen=True)
class BuiltWheel:
    key: NodeKey
    path: Path
    metadata: CoreMetadata
    record: BuildRecord
    reused: bool

    @property
    def source_metadata(self) -> CoreMetadata:
        """The wheel's metadata as resolution sees it: under the source version, whatever
        rebuild number the wheel's own version carries."""
        return dataclasses.replace(self.metadata, version=self.key.version)

    def env_wheel(self) -> EnvWheel:
        return EnvWheel(
            name=self.key.name,
            version=str(self.key.version),
            filename=self.path.name,
            sha256=self.record.wheel_sha256,
        )


@dataclass(frozen=True)
class BuildSet:
    """A resolved build environment whose wheels are all built."""

    resolution: Resolution
    wheels: tuple[BuiltWheel, ...]

    def env_wheels(self) -> tuple[EnvWheel, ...]:
        return tuple(sorted(w.env_wheel() for w in self.wheels))

    def paths(self) -> list[Path]:
        return [w.path for w in sorted(self.wheels, key=lambda w: w.key)]


@dataclass
class Result:
    graph: DependencyGraph
    install: Resolution
    built: dict[NodeKey, BuiltWheel] = field(default_factory=dict)
    build_order: list[NodeKey] = field(default_factory=list)
    #: With keep_going: what failed and what was published (None otherwise).
    report: RunReport | None = None


def describe_mismatch(used: CoreMetadata, built: CoreMetadata, origin: str) -> str:
    (used_reqs, used_python), (built_reqs, built_python) = (
        used.dependency_key(),
        built.dependency_key(),
    )
    parts = [f"{built.name}=={built.version} (resolved with {origin}):"]
    if used_reqs - built_reqs:
        parts.append(f"resolved with {sorted(used_reqs - built_reqs)} that the wheel lacks;")
    if built_reqs - used_reqs:
        parts.append(f"the wheel requires {sorted(built_reqs - used_reqs)} too;")
    if used_python != built_python:
        parts.append(f"Requires-Python {used_python!r} became {built_python!r}")
    return " ".join(parts).rstrip(";")


def key_of(release: Release) -> NodeKey:
    return NodeKey(release.name, release.version)


class Bootstrapper:
    """One run over one output directory."""

    def __init__(
        self,
        options: Options,
        http: HttpClient,
        reporter: Reporter | None = None,
        *,
        settings: Settings | None = None,
        patch_layers: Sequence[Path] = (),
        plugins: Plugins | None = None,
    ):
        self.options = options
        self.settings = settings or Settings([])
        self.plugins = plugins or Plugins()
        self.patch_layers = list(patch_layers)
        out = options.output_dir
        self.work_dir = out / ".work"
        self.logs_dir = out / "logs"
        self.reporter = reporter or NullReporter()
        self._http = http
        self.index = IndexClient(options.index_url, http)
        tags = list(sys_tags())
        self.finder = IndexFinder(
            self.index,
            Version(".".join(map(str, sys.version_info[:3]))),
            prebuilt=lambda name: self.settings.for_package(name, options.variant).prebuilt,
            external_source=lambda name: (
                self.settings.for_package(name, options.variant).source is not None
            ),
            tags=tags,
        )
        self.sources = SourceStore(http, self.work_dir / "downloads", out / "sdists")
        self.publisher = IndexWriter(out)
        self.store = WheelStore(self.work_dir / "built", self.publisher.wheels_dir)
        self.builder = PackageBuilder(
            self.work_dir,
            self.logs_dir,
            EnvFactory(self.work_dir / "uv-cache"),
            self.plugins,
            isolation=options.isolation,
            sandbox=options.sandbox,
            unpack_limits=options.unpack_limits,
        )
        self.oracle = MetadataOracle(
            self.index,
            self.sources,
            tags,
            stored=self._stored_metadata,
            adjust=self._as_settings_will_make_it,
        )
        self.environment = {k: str(v) for k, v in default_environment().items()}
        self.graph = DependencyGraph()
        self._pool = ThreadPoolExecutor(max_workers=64, thread_name_prefix="bootstrap")
        # Its own few threads, so guesses waiting on builds never starve real work.
        self._speculation = ThreadPoolExecutor(
            max_workers=max(2, options.jobs), thread_name_prefix="speculate"
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._jobs: asyncio.Semaphore | None = None
        self._tasks: dict[NodeKey, asyncio.Future[BuiltWheel]] = {}
        self._waits: nx.DiGraph = nx.DiGraph()
        self._resolutions: dict[tuple[str, ...], tuple[Resolution, tuple[str, ...]]] = {}
        self._used: set[NodeKey] = set()
        #: Set when run() returns: threads still waiting on the run's loop give up.
        self._over = threading.Event()
        self.failures = FailureLog()
        #: The members of each package's build environments (discovery and build).
        self._needs: dict[NodeKey, set[NodeKey]] = {}

    # -- entry point ---------------------------------------------------------------

    def run(
        self,
        requirements: Sequence[Requirement],
        constraints: Mapping[NormalizedName, SpecifierSet] | None = None,
    ) -> Result:
        self._prepare_dirs()
        try:
            return asyncio.run(self._run(requirements, constraints or {}))
        finally:
            self._over.set()
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._speculation.shutdown(wait=False, cancel_futures=True)
            self.index.close()

    def _claim_variant(self) -> None:
        """One output directory holds one variant, so a CPU and a CUDA tree never mix."""
        marker = self.work_dir / "variant"
        wanted = self.options.variant or ""
        if marker.is_file():
            held = marker.read_text(encoding="utf-8").strip()
            if held != wanted:
                raise BootstrapError(
                    f"{self.options.output_dir} holds the output of "
                    + (f"the {held!r} variant" if held else "the base settings (no variant)")
                    + "; give this run its own --output-dir"
                )
            return
        atomic_write_text(marker, wanted + "\n")

    def _prepare_dirs(self) -> None:
        self._claim_variant()
        # Scratch from an interrupted run is never trusted; stored results are.
        for scratch in SCRATCH_PARTS:
            shutil.rmtree(self.work_dir / scratch, ignore_errors=True)
        out = self.options.output_dir
        for directory in (
            out,
            out / "simple",
            out / "wheels",
            out / "sdists",
            self.work_dir / "built",
            self.work_dir / "downloads",
        ):
            sweep_temporary_files(directory, recursive=directory.name == "simple")
        for directory in (self.logs_dir, self.work_dir / "built", self.publisher.wheels_dir):
            directory.mkdir(parents=True, exist_ok=True)

    async def _run(
        self,
        requirements: Sequence[Requirement],
        constraints: Mapping[NormalizedName, SpecifierSet],
    ) -> Result:
        self._loop = asyncio.get_running_loop()
        self._jobs = asyncio.Semaphore(max(1, self.options.jobs))
        roots = list(requirements)
        try:
            if self.options.keep_going:
                install, roots = await self._settle_roots(requirements, constraints)
            else:
                install = await self._settle(
                    requirements, owner=None, chain=(), constraints=constraints
                )
        except BaseException:
            for task in self._tasks.values():
                task.cancel()
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)
            raise
        published: Set[NodeKey] = self._used
        report = None
        if self.options.keep_going:
            publication = plan_publication(
                roots, install.resolution, self.environment, self._succeeded(), self._needs
            )
            published, roots = publication.keys, list(publication.published)
            report = make_report(self.failures, requirements, publication, len(published))
            if not report.ok:
                for failure in report.failures:
                    logger.error(
                        "keep-going: %s %s: %s", failure.status, failure.label, failure.error
                    )
                await self._in_thread(
                    functools.partial(write_report, self.options.output_dir, report)
                )
        for requirement in roots:
            name = canonicalize_name(requirement.name)
            if name in install.resolution.pins:
                self.graph.add_root(key_of(install.resolution.pins[name]), requirement)
        for key in sorted(published):
            wheel = self._tasks[key].result()
            self.graph.add_node(
                Node(
                    key=key,
                    version=str(wheel.metadata.version),
                    wheel=wheel.path.name,
                    sdist=wheel.record.sdist,
                    extra={
                        "source_version": str(key.version),
                        "wheel_sha256": wheel.record.wheel_sha256,
                        "sdist_sha256": wheel.record.sdist_sha256,
                        "rebuild": wheel.record.rebuild,
                        **wheel.record.plan,
                        **({"fallback": wheel.record.fallback} if wheel.record.fallback else {}),
                    },
                )
            )
        graph = self.graph.restricted(published)
        result = Result(
            graph=graph,
            install=install.resolution,
            built={k: self._tasks[k].result() for k in published},
            build_order=graph.build_order(),
            report=report,
        )
        if not roots:
            return result  # nothing whole to publish: the previous outputs stay as they were
        # Publish only complete closures (after the whole run succeeded, or with
        # keep_going those of the requirements that did); the private store already
        # keeps every finished build.
        await self._in_thread(
            functools.partial(self._publish, [result.built[k] for k in sorted(published)])
        )
        write_outputs(
            self.options.output_dir,
            [str(r) for r in roots],
            result.graph,
            result.build_order,
            {key: wheel.record for key, wheel in result.built.items()},
            (
                (name, result.built[key_of(release)].metadata.version)
                for name, release in result.install.pins.items()
                if key_of(release) in result.built
            ),
        )
        await self._in_thread(
            functools.partial(
                check_installable,
                self.publisher.simple_dir,
                roots,
                self.options.output_dir / "constraints.txt",
                stamp=self.work_dir / "install-check",
            )
        )
        if report is None or report.ok:
            await self._in_thread(functools.partial(remove_report, self.options.output_dir))
        return result

    async def _settle_roots(
        self,
        requirements: Sequence[Requirement],
        constraints: Mapping[NormalizedName, SpecifierSet],
    ) -> tuple[BuildSet, list[Requirement]]:
        """keep_going: settle the top-level requirements jointly, as always. When they do
        not resolve together (one of them cannot be resolved, or a release it needs has no
        cheap metadata and fails to build), take them one at a time in the given order,
        keeping each that still resolves together with those kept before it; the others
        are recorded as failures and not published. Returns the set and those kept."""
        try:
            settled = await self._settle(
                requirements, owner=None, chain=(), constraints=constraints
            )
            return settled, list(requirements)
        except BootstrapError as e:
            self.reporter.message(
                f"the top-level requirements do not resolve together ({e.message}); "
                "trying them one at a time"
            )
        kept: list[Requirement] = []
        for requirement in requirements:
            try:
                await self._resolve([*kept, requirement], None, (), constraints)
            except BootstrapError as e:
                self.failures.root_failed(requirement, e)
            else:
                kept.append(requirement)
        if not kept:
            return BuildSet(Resolution({}, {}, {}, {}), ()), kept
        settled = await self._settle(kept, owner=None, chain=(), constraints=constraints)
        return settled, kept

    def _succeeded(self) -> set[NodeKey]:
        """The packages whose task produced a wheel."""
        return {
            key
            for key, task in self._tasks.items()
            if task.done() and not task.cancelled() and task.exception() is None
        }

    # -- sets: resolve, build every member, check the metadata used ---------------

    async def _settle(
        self,
        requirements: Sequence[Requirement],
        *,
        owner: NodeKey | None,
        chain: Sequence[str],
        constraints: Mapping[NormalizedName, SpecifierSet] | None = None,
    ) -> BuildSet:
        """Resolve ``requirements`` jointly and build every member; re-resolve while a
        built wheel contradicts the metadata the resolution relied on."""
        mismatches: list[str] = []
        for _ in range(MAX_RESOLVE_ROUNDS):
            resolution = await self._resolve(requirements, owner, chain, constraints)
            keys = [key_of(r) for r in resolution.pins.values()]
            if owner is not None:
                self._wait_for(owner, keys, chain)
            results = await asyncio.gather(
                *(
                    self._ensure(release, resolution.chains.get(name, (*chain, name)))
                    for name, release in resolution.pins.items()
                ),
                # keep_going: let every member finish; a failure is in self.failures
                # and, in a build environment, fails its owner once the rest is done.
                return_exceptions=self.options.keep_going,
            )
            built = [w for w in results if isinstance(w, BuiltWheel)]
            for error in results:
                if isinstance(error, BaseException) and (
                    owner is not None or not isinstance(error, BootstrapError)
                ):
                    raise error
            mismatches = [
                describe_mismatch(
                    resolution.metadata[w.key.name],
                    w.source_metadata,
                    self.oracle.origin(w.key.name, w.key.version),
                )
                for w in built
                if resolution.metadata[w.key.name].dependency_key() != w.metadata.dependency_key()
            ]
            if not mismatches:
                self._record_set(resolution)
                if owner is not None:
                    self._needs.setdefault(owner, set()).update(keys)
                return BuildSet(resolution, tuple(built))
            self.reporter.message(
                "re-resolving: built wheels disagree with the metadata used:\n  "
                + "\n  ".join(mismatches)
            )
            self._resolutions.clear()
        raise MetadataMismatchError(
            "built wheels keep contradicting the metadata used to resolve them",
            chain=chain,
            details="\n".join(mismatches),
        )

    async def _resolve(
        self,
        requirements: Sequence[Requirement],
        owner: NodeKey | None,
        chain: Sequence[str],
        constraints: Mapping[NormalizedName, SpecifierSet] | None,
    ) -> Resolution:
        memo_key = tuple(sorted(str(r) for r in requirements))
        if owner is not None and memo_key in self._resolutions:
            # Same build requirements as another package: same set, but our own chains.
            earlier, earlier_chain = self._resolutions[memo_key]
            return dataclasses.replace(
                earlier,
                chains={
                    name: (*chain, *path[len(earlier_chain) :])
                    for name, path in earlier.chains.items()
                },
            )
        self.reporter.resolving(" ".join(str(r) for r in requirements) or "(nothing)", chain)
        source = _OwnedMetadata(self, owner)
        resolution = await self._in_thread(
            functools.partial(
                resolve,
                requirements,
                self.finder,
                source,
                constraints=constraints,
                environment=self.environment,
                allow_prereleases=self.options.allow_prereleases,
                chain=chain,
            )
        )
        self.reporter.resolved([key_of(r) for r in resolution.pins.values()])
        if owner is not None:
            self._resolutions[memo_key] = (resolution, tuple(chain))
        return resolution

    def _record_set(self, resolution: Resolution) -> None:
        for name, release in resolution.pins.items():
            self._used.add(key_of(release))
            for requirement in resolution.dependencies[name]:
                dep = resolution.pins.get(canonicalize_name(requirement.name))
                if dep is not None:
                    self.graph.add_edge(key_of(release), key_of(dep), EdgeKind.INSTALL, requirement)

    def _wait_for(self, owner: NodeKey, keys: Sequence[NodeKey], chain: Sequence[str]) -> None:
        """Record that ``owner``'s build waits for ``keys``; refuse a cycle."""
        for key in keys:
            if key == owner or (
                key in self._waits and owner in self._waits and nx.has_path(self._waits, key, owner)
            ):
                path = [owner] if key == owner else nx.shortest_path(self._waits, key, owner)
                ring = [owner, *path[:-1]] if key != owner else [owner]
                # Start the cycle where the user's chain first enters it.
                start = next((i for name in chain for i, k in enumerate(ring) if k.name == name), 0)
                ring = ring[start:] + ring[:start]
                cycle = [*ring, ring[0]]
                raise BuildCycleError(
                    "build cycle: " + " -> ".join(str(k) for k in cycle),
                    package=owner.name,
                    chain=chain,
                    details="each of these needs the next one built before it can be built",
                )
            self._waits.add_edge(owner, key)

    # -- one package ---------------------------------------------------------------

    async def _ensure(self, release: Release, chain: Sequence[str]) -> BuiltWheel:
        key = key_of(release)
        task = self._tasks.get(key)
        if task is None:
            task = asyncio.ensure_future(self._build_package(release, tuple(chain)))
            self._tasks[key] = task
            self.reporter.queued(key)
        return await asyncio.shield(task)

    async def _build_package(self, release: Release, chain: tuple[str, ...]) -> BuiltWheel:
        key = key_of(release)
        log_path = self.builder.log_path(release)
        try:
            return await self._build_package_steps(release, chain)
        except BootstrapError as e:
            e.with_context(chain=chain)
            e.package = e.package or release.name
            if e.log_path is None and log_path.exists():
                e.log_path = log_path
            self.failures.package_failed(key, chain, e)
            if self.options.fallback_prebuilt:
                fallback = await self._fall_back_to_prebuilt(release)
                if fallback is not None:
                    return fallback
            self.reporter.failed(key, e)
            raise

    async def _fall_back_to_prebuilt(self, release: Release) -> BuiltWheel | None:
        """fallback_prebuilt: the index's wheel of the same version stands in for a
        package that could not be built, hash-checked and edited as ``prebuilt: true``
        does; None when the index has no wheel for this interpreter."""
        key = key_of(release)
        try:
            upstream = await self._in_thread(
                functools.partial(self.finder.upstream_wheel, release.name, release.version)
            )
            if upstream is None:
                return None
            wheel, wheel_sha256 = await self._in_thread(
                functools.partial(self.sources.fetch, upstream)
            )
            built = await self._take_prebuilt(
                upstream, wheel, wheel_sha256, self._plan(upstream), fallback=True
            )
        except BootstrapError as e:
            logger.warning("no fallback for %s: %s", release, e.message)
            return None
        self.failures.fell_back(key, FALLBACK_PREBUILT)
        self._needs.pop(key, None)  # the upstream wheel needs no build environment
        self.reporter.message(f"{key}: could not be built; took {wheel.name} from the index")
        return built

    async def _build_package_steps(self, release: Release, chain: tuple[str, ...]) -> BuiltWheel:
        key = key_of(release)
        plan = self._plan(release)
        await self._in_thread(functools.partial(self._archive_patches, release, plan))
        sdist, sdist_sha256 = await self._in_thread(
            functools.partial(self._fetch_source, release, plan)
        )
        if release.prebuilt:
            return await self._take_prebuilt(release, sdist, sdist_sha256, plan)
        previous = self.store.lookup(release.name, release.version)
        record = (
            previous[1]
            if previous
            and previous[1].source_sha256 == sdist_sha256
            and previous[1].plan == plan.fingerprint(release.version)
            else None
        )
        tree: SourceTree | None = None

        async def source_tree() -> SourceTree:
            nonlocal tree
            if tree is None:
                tree = await self._in_thread(
                    functools.partial(
                        self._step, release, log, self.builder.prepare, release, sdist, plan, log
                    )
                )
            return tree

        with self.builder.log(release, fresh=record is None) as log:
            if record is not None:
                build_system = BuildSystem(
                    requires=tuple(Requirement(r) for r in record.build_system_requires),
                    backend=record.build_backend,
                )
            else:
                build_system = (await source_tree()).build_system
            discovery = await self._settle(list(build_system.requires), owner=key, chain=chain)
            if record is not None and record.discovery_env == discovery.env_wheels():
                backend_requires = [Requirement(r) for r in record.backend_requires]
            else:
                record = None
                prepared = await source_tree()
                async with self._job():
                    self.reporter.started(key, "discovering build requirements")
                    backend_requires = await self._in_thread(
                        functools.partial(
                            self._step,
                            release,
                            log,
                            self.builder.discover,
                            release,
                            prepared,
                            discovery.paths(),
                            plan,
                            log,
                        )
                    )
            declared = {requirement_key(r) for r in build_system.requires}
            extra = [r for r in backend_requires if requirement_key(r) not in declared]
            build_set = (
                await self._settle([*build_system.requires, *extra], owner=key, chain=chain)
                if extra
                else discovery
            )
            self._add_build_edges(key, build_system.requires, EdgeKind.BUILD_SYSTEM, build_set)
            self._add_build_edges(key, extra, EdgeKind.BUILD_BACKEND, build_set)

            if (
                record is not None
                and previous is not None
                and record.build_env == build_set.env_wheels()
            ):
                wheel_path = previous[0]
                metadata = parse_metadata(read_wheel_metadata(wheel_path), wheel_path.name)
                built = BuiltWheel(key, wheel_path, metadata, record, reused=True)
                self.reporter.finished(key, reused=True)
            else:
                built = await self._build_wheel(
                    release,
                    plan,
                    await source_tree(),
                    sdist,
                    sdist_sha256,
                    discovery,
                    build_set,
                    backend_requires,
                    log,
                )
        self.oracle.record_built(built.source_metadata)
        return built

    async def _take_prebuilt(
        self,
        release: Release,
        wheel: Path,
        wheel_sha256: str,
        plan: BuildPlan,
        *,
        fallback: bool = False,
    ) -> BuiltWheel:
        """``prebuilt: true``: the upstream wheel (hash-checked on download) stands in for
        a build; the requires edits and the rebuild number still apply. ``fallback``: the
        same for a package whose build failed (its log keeps the failure)."""
        key = key_of(release)
        marker = FALLBACK_PREBUILT if fallback else None
        previous = self.store.lookup(release.name, release.version)
        if (
            previous is not None
            and previous[1].sdist_sha256 == wheel_sha256
            and previous[1].plan == plan.fingerprint(release.version)
            and previous[1].fallback == marker
        ):
            path, record = previous
            reused = True
        else:
            started = now()
            with self.builder.log(release, fresh=not fallback) as log:
                if fallback:
                    log.write(b"== fallback: the build failed; taking the index's wheel\n")
                log.write(f"== prebuilt: taking {wheel.name} from the index as it is\n".encode())
                path = await self._in_thread(
                    functools.partial(
                        self._step,
                        release,
                        log,
                        self.builder.take_prebuilt,
                        release,
                        wheel,
                        plan,
                        log,
                    )
                )
            record = make_record(
                release=release,
                wheel=path,
                wheel_sha256=await self._in_thread(functools.partial(sha256_file, path)),
                sdist=wheel,
                sdist_sha256=wheel_sha256,
                build_system=BuildSystem(requires=(), backend="(prebuilt upstream wheel)"),
                backend_requires=(),
                discovery_env=(),
                build_env=(),
                started=started,
                log=self.builder.log_path(release),
                plan=plan,
            )
            record = dataclasses.replace(record, fallback=marker)
            path = await self._in_thread(functools.partial(self.store.add, path, record))
            reused = False
        metadata = parse_metadata(read_wheel_metadata(path), path.name)
        built = BuiltWheel(key, path, metadata, record, reused=reused)
        self.reporter.finished(key, reused=reused)
        self.oracle.record_built(built.source_metadata)
        return built

    def _fetch_source(self, release: Release, plan: BuildPlan) -> tuple[Path, str]:
        """The source archive to build: a plugin's, the settings' ``source``, or the
        index's sdist (hash-checked)."""
        context = self.builder.context(release, plan)
        from_plugin = self.plugins.call(release.name, "fetch_source", context)
        if from_plugin is not None:
            path = Path(from_plugin)
            if not path.is_file():
                raise BootstrapError(
                    f"the {release.name} plugin's fetch_source returned {path}, which is not "
                    "a file",
                    package=release.name,
                )
            dest = self.sources.downloads_dir / path.name
            if path.resolve() != dest.resolve():
                atomic_copy(path, dest)
            return dest, sha256_file(dest)
        spec = plan.settings.source
        if spec is None or release.prebuilt:
            return self.sources.fetch(release)
        variables = {**os.environ, "version": str(release.version)}
        stem = f"{release.name.replace('-', '_')}-{release.version}"
        try:
            if spec.url is not None:
                url = expand(spec.url, variables, "source.url")
                suffix = ".zip" if url.lower().endswith(".zip") else ".tar.gz"
                dest = self.sources.downloads_dir / f"{stem}{suffix}"
                return dest, fetch_url(self._http, url, dest)
            assert spec.git is not None
            ref = expand(spec.ref or "${version}", variables, "source.ref")
            dest = self.sources.downloads_dir / f"{stem}.tar.gz"
            return dest, fetch_git(
                expand(spec.git, variables, "source.git"), ref, stem, dest, self.work_dir
            )
        except BootstrapError as e:
            e.package = release.name
            e.details = "\n".join(
                filter(
                    None,
                    [
                        e.details,
                        f"the source is the 'source' setting of {release.name} in "
                        f"{' and '.join(plan.settings.files)}; a machine that cannot reach "
                        "it can take the upstream wheel instead with 'prebuilt: true'",
                    ],
                )
            )
            raise

    def _plan(self, release: Release) -> BuildPlan:
        return make_plan(self.settings, self.patch_layers, self.options.variant, release)

    async def _build_wheel(
        self,
        release: Release,
        plan: BuildPlan,
        tree: SourceTree,
        sdist: Path,
        sdist_sha256: str,
        discovery: BuildSet,
        build_set: BuildSet,
        backend_requires: Sequence[Requirement],
        log: Any,
    ) -> BuiltWheel:
        key = key_of(release)
        async with self._job():
            started = now()
            self.reporter.started(key, "building")
            wheel = await self._in_thread(
                functools.partial(
                    self._step,
                    release,
                    log,
                    self.builder.build,
                    release,
                    tree,
                    build_set.paths(),
                    plan,
                    log,
                )
            )
            # Before the job slot is free: the record times the build, not what follows.
            finished = now()
        metadata_bytes = read_wheel_metadata(wheel)
        metadata = parse_metadata(metadata_bytes, wheel.name)
        expected_version = plan.edit.new_version(release.version)
        if (metadata.name, metadata.version) != (release.name, expected_version):
            raise BootstrapError(
                f"{release}: the backend built {wheel.name}, which is "
                f"{metadata.name} {metadata.version}",
                package=release.name,
            )
        if tree.archive is not None:  # crates vendored: the vendored sdist is the source
            sdist, sdist_sha256 = tree.archive.path, tree.archive.sha256
        record = make_record(
            release=release,
            wheel=wheel,
            wheel_sha256=await self._in_thread(functools.partial(sha256_file, wheel)),
            sdist=sdist,
            sdist_sha256=sdist_sha256,
            build_system=tree.build_system,
            backend_requires=backend_requires,
            discovery_env=discovery.env_wheels(),
            build_env=build_set.env_wheels(),
            started=started,
            log=self.builder.log_path(release),
            plan=plan,
            epoch=tree.epoch,
            patches_applied=tree.patches,
            vendored=tree.vendored,
            pass_env=self.builder.sandbox.pass_env,
            finished=finished,
        )
        stored = await self._in_thread(functools.partial(self.store.add, wheel, record))
        if not self.options.keep_work:
            await self._in_thread(functools.partial(self.builder.cleanup, release))
        self.reporter.finished(key, reused=False)
        return BuiltWheel(key, stored, metadata, record, reused=False)

    def _publish(self, wheels: Sequence[BuiltWheel]) -> None:
        sources = []
        for built in wheels:
            sdist = (
                self.builder.vendored_dir if built.record.vendored else self.sources.downloads_dir
            ) / built.record.sdist
            if not sdist.exists():
                continue
            # An upstream wheel taken as it is travels too (build-sequence needs it), but
            # apart from the sources: it is not one.
            self.sources.archive(sdist)
            if not sdist.name.endswith(".whl"):
                sources.append(built.key.name)
        SourceIndexWriter(self.sources.sdists_dir).update(
            sources, {w.record.sdist: w.record.sdist_sha256 for w in wheels}
        )
        self.publisher.publish(
            (w.path, read_wheel_metadata(w.path), self.store.record_path(w.path)) for w in wheels
        )

    def _archive_patches(self, release: Release, plan: BuildPlan) -> None:
        """Keep the patches a build uses in DIR/patches/<name>/<version>/, so that the
        output directory alone can rebuild the tree."""
        for patch in plan.patches:
            dest = archived_patch(self.options.output_dir, release.name, release.version, patch)
            copy_unless_identical(patch.path, dest, patch.sha256)

    def _add_build_edges(
        self,
        key: NodeKey,
        requirements: Sequence[Requirement],
        kind: EdgeKind,
        build_set: BuildSet,
    ) -> None:
        for requirement in requirements:
            if not requirement.marker or requirement.marker.evaluate(self.environment):
                pin = build_set.resolution.pins.get(canonicalize_name(requirement.name))
                if pin is not None:
                    self.graph.add_edge(key, key_of(pin), kind, requirement)

    def _as_settings_will_make_it(self, metadata: CoreMetadata) -> CoreMetadata:
        edits = self.settings.for_package(metadata.name, self.options.variant).requires
        if not edits:
            return metadata
        return dataclasses.replace(metadata, requires_dist=edits.apply(metadata.requires_dist))

    def _stored_metadata(self, release: Release) -> CoreMetadata | None:
        """The metadata of the wheel an earlier run built from this very sdist."""
        found = self.store.lookup(release.name, release.version)
        expected = release.sdist.hashes.get("sha256")
        if found is None or expected is None or found[1].source_sha256 != expected.lower():
            return None
        wheel = found[0]
        metadata = parse_metadata(read_wheel_metadata(wheel), wheel.name)
        # Under the source version, whatever rebuild number the wheel's version carries.
        return dataclasses.replace(metadata, version=release.version)

    def speculate(self, requirements: Sequence[Requirement], chain: Sequence[str]) -> None:
        """Learn, in the background, the dependencies of the release the resolver will
        most likely pick for each requirement, so that the metadata look-ups (and the
        builds when there is no cheap metadata) of independent packages overlap instead
        of happening one after the other."""
        for requirement in requirements:
            self._speculation.submit(self._speculate_one, requirement, tuple(chain))

    def _speculate_one(self, requirement: Requirement, chain: tuple[str, ...]) -> None:
        name = canonicalize_name(requirement.name)
        try:
            likely = allowed(
                self.finder.releases(name),
                requirement.specifier,
                exact_pins=frozenset(),
                allow_prereleases=self.options.allow_prereleases,
            )
            if likely:
                self.oracle.metadata(
                    likely[0], (*chain, name), lambda r, c: self.build_for_metadata(r, c, None)
                )
        except (BootstrapError, RuntimeError, asyncio.CancelledError) as e:
            # Only a guess: if the resolver does need this release, it meets the same
            # error itself, with its own chain.
            logger.debug("speculative look-up of %s failed: %s", requirement, e)

    # -- resolution-time builds (no cheap metadata) --------------------------------

    def build_for_metadata(
        self, release: Release, chain: Sequence[str], owner: NodeKey | None
    ) -> CoreMetadata:
        """Called from a resolver thread: build ``release`` to learn its dependencies."""
        assert self._loop is not None

        async def build() -> BuiltWheel:
            if owner is not None:
                self._wait_for(owner, [key_of(release)], chain)
            return await self._ensure(release, chain)

        work = build()
        try:
            future = asyncio.run_coroutine_threadsafe(work, self._loop)
        except RuntimeError:  # the run is over (its loop closed): nothing to build for
            work.close()
            raise
        # The run may end (its loop closed) before the build is even scheduled; a
        # speculative look-up must not wait for it for ever, nor keep the process alive.
        while True:
            try:
                return future.result(timeout=RUN_OVER_POLL).source_metadata
            except TimeoutError:
                if self._over.is_set():
                    future.cancel()
                    work.close()
                    raise RuntimeError("the run is over: nothing to build for") from None

    # -- helpers -------------------------------------------------------------------

    def _step(self, release: Release, log: Any, fn: Callable[..., T], *args: Any) -> T:
        with self.builder.step(release, log):
            return fn(*args)

    async def _in_thread(self, fn: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, fn)

    def _job(self) -> asyncio.Semaphore:
        assert self._jobs is not None
        return self._jobs


class _OwnedMetadata:
    """The run's metadata source, with resolution-time builds attributed to ``owner``."""

    def __init__(self, bootstrapper: Bootstrapper, owner: NodeKey | None) -> None:
        self._b = bootstrapper
        self._owner = owner

    def metadata(self, release: Release, chain: Sequence[str]) -> CoreMetadata:
        return self._b.oracle.metadata(
            release, chain, lambda r, c: self._b.build_for_metadata(r, c, self._owner)
        )

    def anticipate(self, requirements: Sequence[Requirement], chain: Sequence[str]) -> None:
        self._b.speculate(requirements, chain)
