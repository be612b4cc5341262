"""The per-package pipeline of a bootstrap: plan, fetch the source, settle the build
environment, build the unit, finish.

Each step that blocks runs in a scheduler thread; a backend runs only in a job slot.
The build itself is a :class:`~bootstrapper.single_build.BuildUnit`, finished by the same
step as every other command's.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Concatenate, ParamSpec, TypeVar

from packaging.requirements import Requirement

from .allowlist import AllowedProjects
from .builder import BuildPlan, PackageBuilder, SourceTree
from .buildsets import BuildSet, BuildSets, key_of
from .buildsystem import BuildSystem, beyond_declared
from .candidates import Release
from .errors import BootstrapError
from .failures import FALLBACK_PREBUILT, FailureLog
from .finder import IndexFinder
from .fsutil import copy_unless_identical
from .graph import EdgeKind, NodeKey
from .http import HttpClient
from .metasource import MetadataOracle
from .patches import archived_patch
from .plugins import Plugins
from .profiling import timed
from .progress import NullSlotWatch, Reporter, SlotWatch
from .records import BuildRecord
from .scheduler import Scheduler
from .single_build import (
    BuildUnit,
    BuiltWheel,
    Destination,
    FileRef,
    UnitOutput,
    UnitRunner,
    finish,
    recorded_for,
    reusable,
    reuse,
    run_unit,
)
from .sources import SourceStore, fetch_planned_source
from .store import WheelStore

logger = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True)
class Package:
    """What every step of one package's pipeline needs: the release, its plan, its chain."""

    release: Release
    plan: BuildPlan
    chain: tuple[str, ...]


class PackagePipeline:
    """Builds one package version of a run (the scheduler runs it once per version)."""

    def __init__(
        self,
        *,
        builder: PackageBuilder,
        sets: BuildSets,
        scheduler: Scheduler[BuiltWheel],
        sources: SourceStore,
        store: WheelStore,
        http: HttpClient,
        plugins: Plugins,
        finder: IndexFinder,
        oracle: MetadataOracle,
        failures: FailureLog,
        reporter: Reporter,
        plan_for: Callable[[Release], BuildPlan],
        output_dir: Path,
        keep_work: bool,
        fallback_prebuilt: bool,
        run: UnitRunner = run_unit,
        prepare_metadata: bool = True,
        allowed: AllowedProjects | None = None,
        slot_watch: SlotWatch | None = None,
    ) -> None:
        self._builder = builder
        #: The review gate: a project it does not list is never built (nor its source
        #: archived).
        self._allowed = allowed
        #: Told when a package asks for, takes and gives back a job slot (the timeline).
        self._slot_watch = slot_watch or NullSlotWatch()
        #: Ask the backend for the wheel's metadata before building it, when no cheap
        #: source had it (not for builds elsewhere: the build env would be made here too).
        self._prepare_metadata = prepare_metadata
        #: Builds (not prebuilt wheels, which are only taken) go through it: here, or on
        #: a Dask cluster.
        self._run = run
        self._sets = sets
        self._scheduler = scheduler
        self._sources = sources
        self._store = store
        self._http = http
        self._plugins = plugins
        self._finder = finder
        self._oracle = oracle
        self._failures = failures
        self._reporter = reporter
        self._plan_for = plan_for
        self._output_dir = output_dir
        self._fallback_prebuilt = fallback_prebuilt
        self._destination = Destination(store, builder.cleanup, keep_work, reporter)

    async def build(self, release: Release, chain: tuple[str, ...]) -> BuiltWheel:
        """The package's wheel; a failure is logged (and with ``fallback_prebuilt`` the
        index's wheel may stand in)."""
        key = key_of(release)
        if self._allowed is not None and not self._allowed.allows(release.name):
            # Not a build failure: no pre-built fallback stands in for it either.
            refused = self._allowed.refuse(release.name, chain)
            self._failures.package_failed(key, chain, refused)
            self._reporter.failed(key, refused)
            raise refused
        log_path = self._builder.log_path(release)
        try:
            package = Package(release, self._plan_for(release), chain)
            built = await self._build(package)
        except BootstrapError as e:
            e.with_context(chain=chain)
            e.package = e.package or release.name
            if e.log_path is None and log_path.exists():
                e.log_path = log_path
            self._failures.package_failed(key, chain, e)
            if self._fallback_prebuilt:
                fallback = await self._fall_back_to_prebuilt(release, chain)
                if fallback is not None:
                    return fallback
            self._reporter.failed(key, e)
            raise
        self._oracle.record_built(built.source_metadata)
        return built

    async def _build(self, package: Package) -> BuiltWheel:
        release, plan = package.release, package.plan
        source = FileRef(*await self._in_thread(self._inputs, package))
        if release.prebuilt:
            return await self._take_prebuilt(package, source)
        previous = self._store.lookup(release.name, release.version)
        # A record of this source and plan says what the build system and the backend
        # asked for, so a re-run need not unpack the source to know them.
        record = (
            previous[1]
            if previous
            and recorded_for(previous[1], source.sha256, plan.fingerprint(release.version))
            else None
        )
        tree: SourceTree | None = None
        slot = HeldSlot(self._scheduler.slot(), self._slot_watch, key_of(release))
        with self._builder.log(release, fresh=record is None) as log, slot:

            async def source_tree() -> SourceTree:
                nonlocal tree
                if tree is None:
                    tree = await self._step(
                        log, self._builder.prepare, release, source.path, plan, log
                    )
                return tree

            build_system = (
                _recorded_build_system(record)
                if record is not None
                else (await source_tree()).build_system
            )
            discovery, backend_requires = await self._discover(
                package, build_system, record, source_tree, log, slot
            )
            extra = beyond_declared(build_system, backend_requires)
            if extra:
                # Its build environment waits for builds that need the slot.
                slot.give_back()
            build_set = (
                await self._sets.settle(
                    [*build_system.requires, *extra], owner=key_of(release), chain=package.chain
                )
                if extra
                else discovery
            )
            key = key_of(release)
            self._sets.add_build_edges(key, build_system.requires, EdgeKind.BUILD_SYSTEM, build_set)
            self._sets.add_build_edges(key, extra, EdgeKind.BUILD_BACKEND, build_set)
            if tree is not None and tree.archive is not None:
                # Crates were vendored: the vendored sdist is the source.
                source = FileRef(tree.archive.path, tree.archive.sha256)
            unit = BuildUnit(
                release=release,
                plan=plan,
                source=source,
                build_env=build_set.env_inputs(),
                discovery_env=discovery.env_wheels(),
                backend_requires=tuple(backend_requires),
            )
            if previous is not None and reusable(previous[1], unit):
                return self._reuse(unit, previous)
            prepared = await source_tree()
            await self._prepare_metadata_early(package, prepared, build_set, log, slot)
            await slot.take()
            self._reporter.started(key, "building")
            output = await self._in_thread(
                self._run, unit, self._builder, log=log, prepared=prepared
            )
        return await self._in_thread(self._finish, unit, output)

    def _reuse(self, unit: BuildUnit, previous: tuple[Path, BuildRecord]) -> BuiltWheel:
        _, metadata = self._store.metadata(previous[0])
        log = self._builder.log_path(unit.release)
        return reuse(unit, previous, self._reporter, log, metadata)

    def _finish(self, unit: BuildUnit, output: UnitOutput) -> BuiltWheel:
        with timed("finishing"):
            return finish(unit, output, self._destination)

    async def _prepare_metadata_early(
        self,
        package: Package,
        tree: SourceTree,
        build_set: BuildSet,
        log: BinaryIO,
        slot: HeldSlot,
    ) -> None:
        """When resolution has no metadata of this release yet (it may be waiting for it),
        ask the backend's ``prepare_metadata_for_build_wheel`` before the build: it
        rarely compiles anything. A failure there is left for the build to meet."""
        release = package.release
        if not self._prepare_metadata or self._oracle.is_known(release.name, release.version):
            return
        try:
            await slot.take()
            data = await self._step(
                log,
                self._builder.prepare_metadata,
                release,
                tree,
                build_set.paths(),
                package.plan,
                log,
            )
            if data is None:
                return
            metadata = self._oracle.record_prepared(release, data)
        except BootstrapError as e:
            log.write(f"== no metadata before the build: {e.message}\n".encode())
            return
        self._sets.metadata_prepared(key_of(release), metadata)

    async def _discover(
        self,
        package: Package,
        build_system: BuildSystem,
        record: BuildRecord | None,
        source_tree: Callable[[], Awaitable[SourceTree]],
        log: BinaryIO,
        slot: HeldSlot,
    ) -> tuple[BuildSet, list[Requirement]]:
        """The discovery environment and what the backend asked for in it (as recorded,
        when the record's discovery environment is this one)."""
        release = package.release
        discovery = await self._sets.settle(
            list(build_system.requires), owner=key_of(release), chain=package.chain
        )
        if record is not None and record.discovery_env == discovery.env_wheels():
            return discovery, [Requirement(r) for r in record.backend_requires]
        prepared = await source_tree()
        await slot.take()
        self._reporter.started(key_of(release), "discovering build requirements")
        found = await self._step(
            log, self._builder.discover, release, prepared, discovery.paths(), package.plan, log
        )
        return discovery, found

    async def _take_prebuilt(
        self, package: Package, wheel: FileRef, *, fallback: bool = False
    ) -> BuiltWheel:
        """``prebuilt: true``: the upstream wheel (hash-checked on download) stands in for
        a build; the requires edits and the rebuild number still apply. ``fallback``: the
        same for a package whose build failed (its log keeps the failure)."""
        release = package.release
        unit = BuildUnit(
            release, package.plan, wheel, fallback=FALLBACK_PREBUILT if fallback else None
        )
        previous = self._store.lookup(release.name, release.version)
        if previous is not None and reusable(previous[1], unit):
            built = self._reuse(unit, previous)
        else:
            with self._builder.log(release, fresh=not fallback) as log:
                if fallback:
                    log.write(b"== fallback: the build failed; taking the index's wheel\n")
                output = await self._in_thread(run_unit, unit, self._builder, log=log)
            built = await self._in_thread(finish, unit, output, self._destination)
        return built

    async def _fall_back_to_prebuilt(
        self, release: Release, chain: tuple[str, ...]
    ) -> BuiltWheel | None:
        """fallback_prebuilt: the index's wheel of the same version stands in for a
        package that could not be built, hash-checked and edited as ``prebuilt: true``
        does; None when the index has no wheel for this interpreter."""
        key = key_of(release)
        try:
            upstream = await self._in_thread(
                self._finder.upstream_wheel, release.name, release.version
            )
            if upstream is None:
                return None
            wheel = FileRef(*await self._in_thread(self._sources.fetch, upstream))
            package = Package(upstream, self._plan_for(upstream), chain)
            built = await self._take_prebuilt(package, wheel, fallback=True)
        except BootstrapError as e:
            logger.warning("no fallback for %s: %s", release, e.message)
            return None
        self._failures.fell_back(key, FALLBACK_PREBUILT)
        self._sets.needs.pop(key, None)  # the upstream wheel needs no build environment
        self._reporter.message(f"{key}: could not be built; took {wheel.path.name} from the index")
        self._oracle.record_built(built.source_metadata)
        return built

    def _inputs(self, package: Package) -> tuple[Path, str]:
        """Keep the package's patches, then fetch its source (one trip to a thread: on a
        re-run, each is a few file checks)."""
        self._archive_patches(package)
        return self._fetch_source(package)

    def _fetch_source(self, package: Package) -> tuple[Path, str]:
        with timed("downloads"):
            return fetch_planned_source(
                package.release,
                package.plan.settings,
                self._sources,
                self._http,
                self._plugins,
                self._builder.context(package.release, package.plan),
            )

    def _archive_patches(self, package: Package) -> None:
        """Keep the patches a build uses in DIR/patches/<name>/<version>/, so that the
        output directory alone can rebuild the tree."""
        release = package.release
        for patch in package.plan.patches:
            dest = archived_patch(self._output_dir, release.name, release.version, patch)
            # A copy: the user's patch file may be edited in place later.
            copy_unless_identical(patch.path, dest, patch.sha256, link=False)

    async def _step(
        self, log: BinaryIO, fn: Callable[Concatenate[Release, P], T], release: Release,
        *args: P.args, **kwargs: P.kwargs,
    ) -> T:  # fmt: skip
        """A builder step in a thread, its failure naming the package and its log."""

        def run() -> T:
            with self._builder.step(release, log):
                return fn(release, *args, **kwargs)

        return await self._scheduler.in_thread(run)

    async def _in_thread(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        return await self._scheduler.in_thread(functools.partial(fn, *args, **kwargs))


class HeldSlot:
    """A job slot one package keeps from its first backend call to its build (given
    back only to wait for other builds), so that its hooks follow one another and one
    backend process can answer them all. ``watch`` is told of each change."""

    def __init__(self, slots: asyncio.Semaphore, watch: SlotWatch, key: NodeKey) -> None:
        self._slots = slots
        self._held = False
        self._watch = watch
        self._key = key

    async def take(self) -> None:
        if not self._held:
            self._watch.slot_asked(self._key)
            await self._slots.acquire()
            self._held = True
            self._watch.slot_taken(self._key)

    def give_back(self) -> None:
        if self._held:
            self._held = False
            self._slots.release()
            self._watch.slot_given_back(self._key)

    def __enter__(self) -> HeldSlot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.give_back()


def _recorded_build_system(record: BuildRecord) -> BuildSystem:
    return BuildSystem(
        requires=tuple(Requirement(r) for r in record.build_system_requires),
        backend=record.build_backend,
    )
