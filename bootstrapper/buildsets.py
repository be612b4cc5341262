"""Build-set resolution: which built wheels make a set of requirements (a package's build
environment, or the top-level install closure).

A set is resolved jointly, every member is built (through the run's per-package
pipeline), and the set is resolved again while a built wheel contradicts the metadata
the resolution relied on. Resolution may need to build a release to learn its
dependencies; those builds are attributed to the package whose set is being resolved,
so that the scheduler sees the cycle if there is one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName, canonicalize_name

from .allowlist import AllowedProjects
from .candidates import Release, allowed
from .errors import BootstrapError, MetadataMismatchError
from .failures import FailureLog
from .finder import IndexFinder
from .graph import DependencyGraph, EdgeKind, NodeKey
from .metadata import CoreMetadata
from .metasource import MetadataOracle
from .profiling import timed, timed_call
from .progress import Reporter
from .records import EnvWheel
from .resolve import Resolution, resolve
from .scheduler import Scheduler
from .single_build import BuiltWheel, EnvInput

logger = logging.getLogger(__name__)

#: How often a set is re-resolved after built wheels contradicted the metadata used.
MAX_RESOLVE_ROUNDS = 5

#: Builds a release (once per run) for a requirement chain.
Ensure = Callable[[Release, Sequence[str]], Awaitable[BuiltWheel]]


def key_of(release: Release) -> NodeKey:
    return NodeKey(release.name, release.version)


@dataclass(frozen=True)
class BuildSet:
    """A resolved set whose wheels are all built."""

    resolution: Resolution
    wheels: tuple[BuiltWheel, ...]

    def env_wheels(self) -> tuple[EnvWheel, ...]:
        return tuple(sorted(w.env_wheel() for w in self.wheels))

    def env_inputs(self) -> tuple[EnvInput, ...]:
        return tuple(
            sorted((EnvInput(w.env_wheel(), w.path) for w in self.wheels), key=lambda e: e.wheel)
        )

    def paths(self) -> list[Path]:
        return [w.path for w in sorted(self.wheels, key=lambda w: w.key)]


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


class BuildSets:
    """Resolves and builds the sets of one run; records their install edges."""

    def __init__(
        self,
        *,
        finder: IndexFinder,
        oracle: MetadataOracle,
        scheduler: Scheduler[BuiltWheel],
        graph: DependencyGraph,
        reporter: Reporter,
        environment: Mapping[str, str],
        allow_prereleases: bool,
        keep_going: bool,
        speculation_threads: int,
        allowed: AllowedProjects | None = None,
    ) -> None:
        self._finder = finder
        self._allowed = allowed
        self._oracle = oracle
        self._scheduler = scheduler
        self._graph = graph
        self._reporter = reporter
        self._environment = dict(environment)
        self._allow_prereleases = allow_prereleases
        self._keep_going = keep_going
        self._ensure: Ensure | None = None
        # Its own few threads, so guesses waiting on builds never starve real work.
        self._speculation = ThreadPoolExecutor(
            max_workers=max(2, speculation_threads), thread_name_prefix="speculate"
        )
        #: Build-set resolutions by requirements, done or under way.
        self._resolutions: dict[tuple[str, ...], _SharedResolution] = {}
        #: Metadata that a backend prepared before its build ended, by package.
        self._prepared: dict[NodeKey, asyncio.Future[CoreMetadata]] = {}
        #: What was speculated on already: (name, specifier).
        self._speculated: set[tuple[NormalizedName, str]] = set()
        self._speculated_lock = threading.Lock()
        #: Every package of a settled set.
        self.used: set[NodeKey] = set()
        #: The members of each package's build environments (discovery and build).
        self.needs: dict[NodeKey, set[NodeKey]] = {}

    def builds_with(self, ensure: Ensure) -> None:
        """The pipeline that builds a member (it settles sets itself: set after both exist)."""
        self._ensure = ensure

    def close(self) -> None:
        self._speculation.shutdown(wait=False, cancel_futures=True)

    async def settle(
        self,
        requirements: Sequence[Requirement],
        *,
        owner: NodeKey | None,
        chain: Sequence[str],
        constraints: Mapping[NormalizedName, SpecifierSet] | None = None,
    ) -> BuildSet:
        """Resolve ``requirements`` jointly and build every member; re-resolve while a
        built wheel contradicts the metadata the resolution relied on."""
        assert self._ensure is not None
        mismatches: list[str] = []
        for _ in range(MAX_RESOLVE_ROUNDS):
            resolution = await self.resolve(requirements, owner, chain, constraints)
            self._review(resolution)
            keys = [key_of(r) for r in resolution.pins.values()]
            if owner is not None:
                self._scheduler.wait_for(owner, keys, chain)
            results = await asyncio.gather(
                *(
                    self._ensure(release, resolution.chains.get(name, (*chain, name)))
                    for name, release in resolution.pins.items()
                ),
                # keep_going: let every member finish; a failure is in the failure log
                # and, in a build environment, fails its owner once the rest is done.
                return_exceptions=self._keep_going,
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
                    self._oracle.origin(w.key.name, w.key.version),
                )
                for w in built
                if resolution.metadata[w.key.name].dependency_key() != w.metadata.dependency_key()
            ]
            if not mismatches:
                self._record_set(resolution)
                if owner is not None:
                    self.needs.setdefault(owner, set()).update(keys)
                return BuildSet(resolution, tuple(built))
            self._reporter.message(
                "re-resolving: built wheels disagree with the metadata used:\n  "
                + "\n  ".join(mismatches)
            )
            self._resolutions.clear()
        raise MetadataMismatchError(
            "built wheels keep contradicting the metadata used to resolve them",
            chain=chain,
            details="\n".join(mismatches),
        )

    async def settle_roots(
        self,
        requirements: Sequence[Requirement],
        constraints: Mapping[NormalizedName, SpecifierSet],
        failures: FailureLog,
    ) -> tuple[BuildSet, list[Requirement]]:
        """keep_going: settle the top-level requirements jointly, as always. When they do
        not resolve together (one of them cannot be resolved, or a release it needs has no
        cheap metadata and fails to build), take them one at a time in the given order,
        keeping each that still resolves together with those kept before it; the others
        are recorded as failures and not published. Returns the set and those kept."""
        try:
            settled = await self.settle(requirements, owner=None, chain=(), constraints=constraints)
            return settled, list(requirements)
        except BootstrapError as e:
            self._reporter.message(
                f"the top-level requirements do not resolve together ({e.message}); "
                "trying them one at a time"
            )
        kept: list[Requirement] = []
        for requirement in requirements:
            try:
                await self.resolve([*kept, requirement], None, (), constraints)
            except BootstrapError as e:
                failures.root_failed(requirement, e)
            else:
                kept.append(requirement)
        if not kept:
            return BuildSet(Resolution({}, {}, {}, {}), ()), kept
        settled = await self.settle(kept, owner=None, chain=(), constraints=constraints)
        return settled, kept

    async def resolve(
        self,
        requirements: Sequence[Requirement],
        owner: NodeKey | None,
        chain: Sequence[str],
        constraints: Mapping[NormalizedName, SpecifierSet] | None,
    ) -> Resolution:
        memo_key = tuple(sorted(str(r) for r in requirements))
        shared = self._resolutions.get(memo_key) if owner is not None else None
        if shared is not None:
            found = await shared.result()
            if found is not None:
                # Same build requirements as another package: same set, our own chains.
                earlier, earlier_chain = found
                return dataclasses.replace(
                    earlier,
                    chains={
                        name: (*chain, *path[len(earlier_chain) :])
                        for name, path in earlier.chains.items()
                    },
                )
        mine = None
        if owner is not None and shared is None:
            # Packages with the same build requirements (on a re-run, every package at
            # once) wait for this one instead of resolving the same set each.
            mine = self._resolutions[memo_key] = _SharedResolution()
        loop = asyncio.get_running_loop()
        building = (
            None if mine is None else functools.partial(loop.call_soon_threadsafe, mine.builds)
        )
        self._reporter.resolving(" ".join(str(r) for r in requirements) or "(nothing)", chain)
        try:
            resolution = await self._scheduler.in_thread(
                functools.partial(
                    timed_call,
                    "resolution (with waits)",
                    resolve,
                    requirements,
                    self._finder,
                    _OwnedMetadata(self, owner, building, constraints),
                    constraints=constraints,
                    environment=self._environment,
                    allow_prereleases=self._allow_prereleases,
                    chain=chain,
                )
            )
        except BaseException:
            if mine is not None:
                mine.failed()
                if self._resolutions.get(memo_key) is mine:
                    del self._resolutions[memo_key]
            raise
        self._reporter.resolved([key_of(r) for r in resolution.pins.values()])
        if mine is not None:
            mine.done(resolution, tuple(chain))
        return resolution

    def _review(self, resolution: Resolution) -> None:
        """Stop before building a set with projects the review gate does not list, naming
        every one of them (with keep_going, each fails alone when its turn comes)."""
        if self._allowed is None or self._keep_going:
            return
        refused = [name for name in resolution.pins if not self._allowed.allows(name)]
        if refused:
            raise self._allowed.refuse_all(refused, resolution.chains)

    def _record_set(self, resolution: Resolution) -> None:
        for name, release in resolution.pins.items():
            self.used.add(key_of(release))
            for requirement in resolution.dependencies[name]:
                dep = resolution.pins.get(canonicalize_name(requirement.name))
                if dep is not None:
                    self._graph.add_edge(
                        key_of(release), key_of(dep), EdgeKind.INSTALL, requirement
                    )

    def add_build_edges(
        self,
        key: NodeKey,
        requirements: Sequence[Requirement],
        kind: EdgeKind,
        build_set: BuildSet,
    ) -> None:
        for requirement in requirements:
            if not requirement.marker or requirement.marker.evaluate(self._environment):
                pin = build_set.resolution.pins.get(canonicalize_name(requirement.name))
                if pin is not None:
                    self._graph.add_edge(key, key_of(pin), kind, requirement)

    # -- resolution-time builds (no cheap metadata) ------------------------------------

    def build_for_metadata(
        self, release: Release, chain: Sequence[str], owner: NodeKey | None
    ) -> CoreMetadata:
        """Called from a resolver thread: build ``release`` to learn its dependencies."""
        assert self._ensure is not None
        ensure = self._ensure

        async def learn() -> CoreMetadata:
            key = key_of(release)
            if owner is not None:
                self._scheduler.wait_for(owner, [key], chain)
            task = asyncio.ensure_future(ensure(release, chain))
            task.add_done_callback(lambda done: done.cancelled() or done.exception())
            early = self._early_metadata(key)
            # The backend's prepare_metadata_for_build_wheel usually answers long before
            # the wheel is built: the resolver goes on while the build does.
            either: set[asyncio.Future[Any]] = {task, early}
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            if early.done():
                return early.result()
            return (await task).source_metadata

        return self._scheduler.from_thread(learn())

    def _early_metadata(self, key: NodeKey) -> asyncio.Future[CoreMetadata]:
        future = self._prepared.get(key)
        if future is None:
            future = self._prepared[key] = asyncio.get_running_loop().create_future()
        return future

    def metadata_prepared(self, key: NodeKey, metadata: CoreMetadata) -> None:
        """On the run's loop: the metadata of ``key``'s wheel is known before its build."""
        future = self._early_metadata(key)
        if not future.done():
            future.set_result(metadata)

    def speculate(
        self,
        requirements: Sequence[Requirement],
        chain: Sequence[str],
        constraints: Mapping[NormalizedName, SpecifierSet] | None = None,
    ) -> None:
        """Learn, in the background, the dependencies of the release the resolver will
        most likely pick for each requirement (and, when they are cheap to learn, of
        theirs in turn), so that the metadata look-ups of independent packages overlap
        instead of happening one after the other; a release with no cheap metadata
        starts building at once, without holding a thread while it builds.

        ``constraints`` are those of the resolution that asked (``-c`` for the install
        closure): a release they exclude could never be picked, so it is never built on
        a guess."""
        wanted = [
            r
            for r in requirements
            if r.marker is None or r.marker.evaluate({**self._environment, "extra": ""})
        ]
        limits = constraints or {}
        fresh = []
        with self._speculated_lock:
            for requirement in wanted:
                name = canonicalize_name(requirement.name)
                specifier = requirement.specifier & limits.get(name, SpecifierSet())
                key = (name, str(specifier))
                if key not in self._speculated:
                    self._speculated.add(key)
                    fresh.append((name, specifier))
        self._finder.prefetch(name for name, _ in fresh)
        for name, specifier in fresh:
            self._speculation.submit(self._speculate_one, name, specifier, tuple(chain), limits)

    def _speculate_one(
        self,
        name: NormalizedName,
        specifier: SpecifierSet,
        chain: tuple[str, ...],
        constraints: Mapping[NormalizedName, SpecifierSet],
    ) -> None:
        try:
            likely = allowed(
                self._finder.releases(name),
                specifier,
                exact_pins=frozenset(),
                allow_prereleases=self._allow_prereleases,
            )
            if not likely:
                return
            release = likely[0]
            metadata = self._oracle.without_build(release, (*chain, name))
            if metadata is None:
                self._start_build(release, (*chain, name), constraints)
            else:
                self.speculate(metadata.requires_dist, (*chain, name), constraints)
        except (BootstrapError, RuntimeError) as e:
            # Only a guess: if the resolver does need this release, it meets the same
            # error itself, with its own chain.
            logger.debug("speculative look-up of %s%s failed: %s", name, specifier, e)

    def _start_build(
        self,
        release: Release,
        chain: tuple[str, ...],
        constraints: Mapping[NormalizedName, SpecifierSet],
    ) -> None:
        """Start the run's task of ``release`` (its build) without waiting for it; once
        its metadata is known (prepared by its backend, or from the wheel), speculate on
        its dependencies in turn, even while the resolver still waits elsewhere."""
        assert self._ensure is not None
        ensure = self._ensure
        if self._allowed is not None and not self._allowed.allows(release.name):
            return  # never built on a guess; if the resolver needs it, it is refused

        def follow(metadata: CoreMetadata) -> None:
            self.speculate(metadata.requires_dist, chain, constraints)

        def built(task: asyncio.Future[BuiltWheel]) -> None:
            # Whoever needs the wheel awaits the task and meets its failure there.
            if not task.cancelled() and task.exception() is None:
                follow(task.result().source_metadata)

        def prepared(early: asyncio.Future[CoreMetadata]) -> None:
            if not early.cancelled():
                follow(early.result())

        async def start() -> None:
            asyncio.ensure_future(ensure(release, chain)).add_done_callback(built)
            self._early_metadata(key_of(release)).add_done_callback(prepared)

        self._scheduler.start_from_thread(start())

    def ready(self, release: Release) -> bool:
        try:
            return self._oracle.without_build(release) is not None
        except BootstrapError:
            return True  # the resolver meets the error itself when it asks


class _SharedResolution:
    """A build-set resolution that packages with the same build requirements share.

    They wait for it only while it builds nothing: a resolution-time build could need
    one of them, and each must then resolve the set itself, so that its own wait for
    the build is recorded and a cycle through it is found, not waited on for ever.
    """

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self._done: asyncio.Future[tuple[Resolution, tuple[str, ...]] | None] = loop.create_future()
        self._builds: asyncio.Future[None] = loop.create_future()

    async def result(self) -> tuple[Resolution, tuple[str, ...]] | None:
        """The set and the chain it was resolved for; None if it failed or builds."""
        if not self._done.done():
            either: set[asyncio.Future[Any]] = {self._done, self._builds}
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        return self._done.result() if self._done.done() else None

    def builds(self) -> None:
        if not self._builds.done():
            self._builds.set_result(None)

    def done(self, resolution: Resolution, chain: tuple[str, ...]) -> None:
        self._done.set_result((resolution, chain))

    def failed(self) -> None:
        self._done.set_result(None)


class _OwnedMetadata:
    """The run's metadata source, with resolution-time builds attributed to ``owner``
    (``building`` is told, from the resolver's thread, before one starts)."""

    def __init__(
        self,
        sets: BuildSets,
        owner: NodeKey | None,
        building: Callable[[], Any] | None = None,
        constraints: Mapping[NormalizedName, SpecifierSet] | None = None,
    ) -> None:
        self._sets = sets
        self._owner = owner
        self._building = building
        self._constraints = constraints

    def metadata(self, release: Release, chain: Sequence[str]) -> CoreMetadata:
        with timed("metadata (with builds)"):
            return self._sets._oracle.metadata(release, chain, self._build)

    def _build(self, release: Release, chain: Sequence[str]) -> CoreMetadata:
        if self._building is not None:
            self._building()
        return self._sets.build_for_metadata(release, chain, self._owner)

    def anticipate(self, requirements: Sequence[Requirement], chain: Sequence[str]) -> None:
        self._sets.speculate(requirements, chain, self._constraints)

    def ready(self, release: Release) -> bool:
        return self._sets.ready(release)
