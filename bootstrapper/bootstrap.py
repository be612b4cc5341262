"""The bootstrap run: resolve, build bottom-up with bounded concurrency, publish, record.

This module wires the parts and publishes: the scheduler (:mod:`.scheduler`) runs each
package's pipeline (:mod:`.pipeline`) once, build environments and the install closure
are resolved and built by :mod:`.buildsets`, and every build is a unit of
:mod:`.single_build`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
import logging
import os
import shutil
from collections.abc import Awaitable, Mapping, Sequence, Set
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from . import __version__
from .allowlist import AllowedProjects
from .archive import DEFAULT_UNPACK_LIMITS, UnpackLimits
from .builder import SCRATCH_PARTS, make_plan
from .buildsets import BuildSet, BuildSets, key_of
from .candidates import Release
from .cores import CoreBudget
from .credentials import redact_text
from .errors import BootstrapError, ReleaseAgeUnsupportedError
from .failures import (
    FailureLog,
    RunReport,
    make_report,
    merge_publications,
    plan_publication,
    remove_report,
    write_report,
)
from .finder import IndexFinder
from .fsutil import (
    HASHES_FILE,
    atomic_write_text,
    each_at_once,
    kept_hashes,
    sha256_file,
    sweep_temporary_files,
)
from .graph import DependencyGraph, Node, NodeKey
from .http import HttpClient
from .index import PYPI_SIMPLE, IndexClient
from .installcheck import check_installable
from .interpreters import Interpreter, current, is_pure
from .metadata import CoreMetadata
from .metadiff import diff_run, read_diffs, write_diffs
from .metasource import MetadataOracle
from .outputs import write_constraints, write_outputs
from .pipeline import PackagePipeline
from .plugins import Plugins
from .profiling import count, timed, timed_call
from .progress import NullReporter, Reporter, SlotWatch
from .provenance import write_provenance
from .publish import IndexWriter, KnownWheel, SourceIndexWriter
from .pythons import joined_graph, joined_order, joined_pins, joined_report
from .records import BuildRecord
from .releaseage import ReleaseAge
from .repair import repair_run
from .resolve import Resolution
from .runrecord import RunRecord, write_run_record
from .sandbox import Sandbox
from .sbom.index import write_index_sbom
from .scheduler import Scheduler
from .settings import Settings
from .signing import Signer
from .single_build import BuildConfig, BuiltWheel, recorded_for, unit_runner
from .sources import SourceStore
from .stamps import TreeStamp
from .store import KEPT_METADATA_DIR, WheelStore

if TYPE_CHECKING:
    from .remote import DaskCluster

logger = logging.getLogger(__name__)

#: The closure of no requirement.
EMPTY = Resolution({}, {}, {}, {})
#: What the last publication was given and left (private; see ``stamps.TreeStamp``).
PUBLISHED_STAMP = "published"


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
    #: The review gate (--allowed-projects): None lets every project in.
    allowed: AllowedProjects | None = None
    #: Resolve each top-level requirement on its own (its own closure), publish all.
    each: bool = False
    #: Leave out the index's files uploaded after a cut-off (--exclude-newer and
    #: --min-release-age).
    release_age: ReleaseAge | None = None
    #: Signs each wheel's provenance (a DSSE envelope); None writes it unsigned.
    signer: Signer | None = None
    #: The interpreters to build for (``--python``), in order; empty: this one.
    pythons: tuple[Interpreter, ...] = ()


@dataclass
class Result:
    graph: DependencyGraph
    install: Resolution
    built: dict[NodeKey, BuiltWheel] = field(default_factory=dict)
    build_order: list[NodeKey] = field(default_factory=list)
    #: With keep_going: what failed and what was published (None otherwise).
    report: RunReport | None = None
    #: Each top-level requirement with the closure it was resolved in (all the same
    #: one, unless each requirement was resolved on its own).
    closures: list[tuple[Requirement, Resolution]] = field(default_factory=list)
    #: The constraints file of each closure, in order (once the outputs are written).
    constraints_files: list[Path] = field(default_factory=list)
    #: Every wheel the run published, for every Python (``built`` has the first's).
    wheels: list[BuiltWheel] = field(default_factory=list)
    #: The Pythons the run built for (``3.12``), in order.
    pythons: tuple[str, ...] = ()


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
        cluster: DaskCluster | None = None,
        slot_watch: SlotWatch | None = None,
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
        self.sources = SourceStore(http, self.work_dir / "downloads", out / "sdists")
        self.publisher = IndexWriter(out)
        self.config = BuildConfig(options.isolation, options.sandbox, options.unpack_limits)
        # Builds on this machine share its cores; on a cluster, each worker has its own.
        self.cores = CoreBudget(options.sandbox.cores) if cluster is None else None
        self.cluster = cluster
        self.slot_watch = slot_watch
        self.interpreters = options.pythons or (current(),)
        #: Pure wheels an earlier Python's part of the run published: the later ones
        #: take them as they are.
        self.pure: dict[NodeKey, BuiltWheel] = {}
        #: The part of the run for the Python being built for now.
        self.part = PythonPart(self, self.interpreters[0])

    @property
    def several(self) -> bool:
        """Whether the run builds for several Pythons."""
        return len(self.interpreters) > 1

    @property
    def graph(self) -> DependencyGraph:
        return self.part.graph

    @property
    def scheduler(self) -> Scheduler[BuiltWheel]:
        return self.part.scheduler

    @property
    def sets(self) -> BuildSets:
        return self.part.sets

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
            self.work_dir / KEPT_METADATA_DIR,
        ):
            sweep_temporary_files(directory, recursive=directory.name == "simple")
        for directory in (self.logs_dir, self.work_dir / "built", self.publisher.wheels_dir):
            directory.mkdir(parents=True, exist_ok=True)

    # -- entry point ---------------------------------------------------------------

    def run(
        self,
        requirements: Sequence[Requirement],
        constraints: Mapping[NormalizedName, SpecifierSet] | None = None,
    ) -> Result:
        self._prepare_dirs()
        with kept_hashes(self.work_dir / HASHES_FILE):
            try:
                parts = []
                for n, interpreter in enumerate(self.interpreters):
                    if n:
                        self.part = PythonPart(self, interpreter)
                    if self.several:
                        self.reporter.message(f"building for Python {interpreter.label}")
                    settled = self.part.run(requirements, constraints or {})
                    parts.append(settled)
                    self.pure.update(
                        (key, wheel)
                        for key, wheel in settled.built.items()
                        if is_pure(wheel.path.name) and key not in self.pure
                    )
                return self._conclude(requirements, constraints or {}, parts)
            finally:
                if self.cores is not None:
                    self.cores.close()
                self.index.close()

    def _conclude(
        self,
        requirements: Sequence[Requirement],
        constraints: Mapping[NormalizedName, SpecifierSet],
        parts: Sequence[Settled],
    ) -> Result:
        """Publish what every Python's part settled, write the run's files, and check
        that the index installs what was asked, on each Python."""
        first, several = parts[0], self.several
        labels = [p.interpreter.label for p in parts]
        graph = first.graph
        if several:
            graph = joined_graph(list(zip(labels, (p.graph for p in parts), strict=True)))
        order = joined_order([(p.order, p.records) for p in parts])
        # A pure wheel one Python's part took from an earlier one's is one wheel.
        wheels = list({w.path.name: w for p in parts for w in p.built.values()}.values())
        result = Result(
            graph=graph,
            install=first.install,
            built=dict(first.built),
            build_order=[key for key, _ in order],
            report=(
                joined_report([(p.interpreter.label, p.report) for p in parts])
                if several
                else first.report
            ),
            closures=first.closures,
            wheels=wheels,
            pythons=tuple(labels),
        )
        if result.report is not None and not result.report.ok:
            write_report(self.options.output_dir, result.report)
        if not any(p.roots for p in parts):
            return result  # nothing whole to publish: the previous outputs stay as they were
        # Publish only complete closures (after the whole run succeeded, or with
        # keep_going those of the requirements that did); the private store already
        # keeps every finished build.
        self._publish(sorted(wheels, key=lambda w: w.path.name))
        roots = list(dict.fromkeys(r for p in parts for r in p.roots))
        with timed("outputs"):
            write_outputs(self.options.output_dir, [str(r) for r in roots], graph, order)
            pins_of = [{redact_text(str(r)): pins for r, pins in p.pins()} for p in parts]
            wanted = list(dict.fromkeys(r for pins in pins_of for r in pins))
            files = result.constraints_files = write_constraints(
                self.options.output_dir,
                [
                    (
                        requirement,
                        joined_pins(
                            [
                                (label, pins[requirement])
                                for label, pins in zip(labels, pins_of, strict=True)
                                if requirement in pins
                            ]
                        ),
                    )
                    for requirement in wanted
                ],
                each=self.options.each,
            )
            write_run_record(self.options.output_dir, self._record(requirements, constraints))
        file_of = dict(zip(wanted, files, strict=True))
        # The install check is an installer's process: what is left to write here needs
        # only the published index, and is done while it runs.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="install-check") as pool:
            checked = pool.submit(self._check_all, parts, file_of)
            with timed("outputs"):
                write_index_sbom(self.options.output_dir, graph)
            timed_call("metadata against upstream", self._compare, parts)
            checked.result()
        if result.report is None or result.report.ok:
            remove_report(self.options.output_dir)
        return result

    def _check_all(self, parts: Sequence[Settled], file_of: Mapping[str, Path]) -> None:
        for part in parts:
            self.check_installable(part, file_of)

    def check_installable(self, part: Settled, file_of: Mapping[str, Path]) -> None:
        """Install what ``part`` published from the index alone, with its Python, the
        way users will."""
        work = self.work_dir
        suffix = f"-py{part.interpreter.label}" if self.several else ""
        checks: list[tuple[list[Requirement], Path, str]] = []
        if self.options.each:
            for requirement in part.roots:
                file = file_of.get(redact_text(str(requirement)))
                if file is not None:
                    checks.append(([requirement], file, f"install-check-{file.stem}{suffix}"))
        elif part.roots and file_of:
            checks.append((part.roots, next(iter(file_of.values())), f"install-check{suffix}"))
        wheel_bytes = sum(w.path.stat().st_size for w in part.built.values())
        for wanted, constraints_file, stamp in checks:
            timed_call(
                "install check",
                check_installable,
                self.publisher.simple_dir,
                wanted,
                constraints_file,
                stamp=work / stamp,
                python=part.interpreter.executable,
                wheel_bytes=wheel_bytes,
            )

    def _record(
        self,
        requirements: Sequence[Requirement],
        constraints: Mapping[NormalizedName, SpecifierSet],
    ) -> RunRecord:
        """What this run was asked for (``DIR/run.json``), for find-updates and update."""
        return RunRecord.of(
            tuple(requirements),
            tuple(Requirement(f"{name}{spec}") for name, spec in sorted(constraints.items())),
            self.options.index_url,
            pre=self.options.allow_prereleases,
            variant=self.options.variant,
            release_age=self.options.release_age,
            each=self.options.each,
            pythons=tuple(i.label for i in self.options.pythons),
        )

    def _compare(self, parts: Sequence[Settled]) -> None:
        """Compare the published wheels' metadata with the upstream wheels' of the same
        versions (``DIR/logs/metadata-diff.json``, which the report shows), each for its
        own Python; a later run asks the index again only for wheels that changed on
        either side."""
        out = self.options.output_dir
        earlier, diffs, seen = read_diffs(out), [], set[str]()
        for part in parts:
            wheels = [
                (wheel.metadata, key.version, wheel.record.wheel_sha256, wheel.record.plan)
                for key, wheel in sorted(part.built.items())
                if wheel.record.wheel_sha256 not in seen
            ]
            seen.update(w[2] for w in wheels)
            diffs.extend(diff_run(wheels, self.index, self._http, part.interpreter.tags, earlier))
        write_diffs(out, diffs)

    def _publish(self, wheels: Sequence[BuiltWheel]) -> None:
        with timed("publishing"):
            # A re-run that publishes the same wheels over an index left as it was would
            # rewrite every page, provenance and link with the same bytes: it is skipped.
            stamp = TreeStamp(
                self.work_dir / PUBLISHED_STAMP,
                [self.publisher.wheels_dir, self.publisher.simple_dir, self.sources.sdists_dir],
            )
            inputs = self._publication_inputs(wheels)
            if stamp.holds(inputs):
                count("publications skipped")
                return
            self._publish_timed(wheels)
            stamp.record(inputs)

    def _source_of(self, built: BuiltWheel) -> Path:
        """The archive ``built`` was made from, as this run keeps it."""
        directory = (
            self.part.builder.vendored_dir if built.record.vendored else self.sources.downloads_dir
        )
        return directory / built.record.sdist

    def _publication_inputs(self, wheels: Sequence[BuiltWheel]) -> str:
        """A digest of what publishing ``wheels`` reads: each wheel, its build record and
        its source (by their sha256, which the hash cache answers without reading an
        unchanged file), the signing key, and this bootstrapper's version."""
        signer = self.options.signer
        lines = [f"bootstrapper {__version__}", f"signer {signer.keyid if signer else '-'}"]
        store = self.part.store
        for built in wheels:
            record = store.record_path(built.path)
            sdist = self._source_of(built)
            lines.append(
                " ".join(
                    [
                        str(built.path),
                        sha256_file(built.path),
                        sha256_file(record) if record.is_file() else "-",
                        str(sdist),
                        built.record.sdist_sha256 if sdist.exists() else "-",
                    ]
                )
            )
        return hashlib.sha256("\n".join(lines).encode()).hexdigest()

    def _publish_timed(self, wheels: Sequence[BuiltWheel]) -> None:
        kept = [(b, s) for b in wheels if (s := self._source_of(b)).exists()]
        each_at_once(self.sources.archive, list(dict.fromkeys(sdist for _, sdist in kept)))
        # An upstream wheel taken as it is travels too (build-sequence needs it), but
        # apart from the sources: it is not one.
        sources = [built.key.name for built, sdist in kept if not sdist.name.endswith(".whl")]
        SourceIndexWriter(self.sources.sdists_dir).update(
            sources, {w.record.sdist: w.record.sdist_sha256 for w in wheels}
        )
        store = self.part.store
        published = self.publisher.publish(
            ((w.path, store.metadata(w.path)[0], store.record_path(w.path)) for w in wheels),
            {
                w.path.name: KnownWheel(w.record.wheel_sha256, str(w.metadata.requires_python))
                for w in wheels
                if w.record.wheel == w.path.name
            },
        )
        write_provenance(
            zip(published, (w.record for w in wheels), strict=True), self.options.signer
        )

    def _as_settings_will_make_it(self, metadata: CoreMetadata) -> CoreMetadata:
        edits = self.settings.for_package(metadata.name, self.options.variant).requires
        if not edits:
            return metadata
        return dataclasses.replace(metadata, requires_dist=edits.apply(metadata.requires_dist))


@dataclass
class Settled:
    """What one Python's part of a run settled: the graph, wheels and closures of the
    requirements it can publish."""

    interpreter: Interpreter
    graph: DependencyGraph
    install: Resolution
    built: dict[NodeKey, BuiltWheel]
    order: list[NodeKey]
    report: RunReport | None
    closures: list[tuple[Requirement, Resolution]]
    #: The top-level requirements whose closures are whole (all of them, but with
    #: keep_going).
    roots: list[Requirement]

    @property
    def records(self) -> dict[NodeKey, BuildRecord]:
        return {key: wheel.record for key, wheel in self.built.items()}

    def pins(self) -> list[tuple[Requirement, list[tuple[str, Version]]]]:
        """Each closure's pins: every project at the version of its published wheel."""
        return [
            (
                requirement,
                [
                    (name, self.built[key_of(release)].metadata.version)
                    for name, release in closure.pins.items()
                    if key_of(release) in self.built
                ],
            )
            for requirement, closure in self.closures
        ]


class PythonPart:
    """The part of a run for one target Python: resolution with its markers and tags,
    build environments made with it, its own scheduler. The run's index, sources,
    publisher and core budget are shared by every part."""

    def __init__(self, run: Bootstrapper, interpreter: Interpreter) -> None:
        self.run_ = run
        self.interpreter = interpreter
        options = run.options
        self.options = options
        self.reporter = run.reporter
        out = options.output_dir
        tags = list(interpreter.tags)
        self.finder = IndexFinder(
            run.index,
            interpreter.version,
            prebuilt=lambda name: run.settings.for_package(name, options.variant).prebuilt,
            external_source=lambda name: (
                run.settings.for_package(name, options.variant).source is not None
            ),
            tags=tags,
            release_age=options.release_age,
        )
        self.store = WheelStore(
            run.work_dir / "built",
            run.publisher.wheels_dir,
            accepts=interpreter.accepts,
            metadata_dir=run.work_dir / KEPT_METADATA_DIR,
        )
        self.builder = run.config.builder(
            run.work_dir,
            run.logs_dir,
            run.plugins,
            run.cores,
            python=None if interpreter.is_current() else interpreter.executable,
            suffix=f"-py{interpreter.label}" if run.several else "",
        )
        self.oracle = MetadataOracle(
            run.index,
            run.sources,
            tags,
            stored=self._stored_metadata,
            adjust=run._as_settings_will_make_it,
            ranges=run._http,
        )
        self.environment = dict(interpreter.environment)
        self.graph = DependencyGraph()
        self.failures = FailureLog()
        self.scheduler: Scheduler[BuiltWheel] = Scheduler(options.jobs)
        self.sets = BuildSets(
            finder=self.finder,
            oracle=self.oracle,
            scheduler=self.scheduler,
            graph=self.graph,
            reporter=self.reporter,
            environment=self.environment,
            allow_prereleases=options.allow_prereleases,
            keep_going=options.keep_going,
            speculation_threads=options.jobs,
            allowed=options.allowed,
        )
        self.plan_for = functools.partial(
            make_plan, run.settings, run.patch_layers, options.variant
        )
        self.pipeline = PackagePipeline(
            builder=self.builder,
            sets=self.sets,
            scheduler=self.scheduler,
            sources=run.sources,
            store=self.store,
            http=run._http,
            plugins=run.plugins,
            finder=self.finder,
            oracle=self.oracle,
            failures=self.failures,
            reporter=self.reporter,
            plan_for=self.plan_for,
            output_dir=out,
            keep_work=options.keep_work,
            fallback_prebuilt=options.fallback_prebuilt,
            run=unit_runner(run.config, run.cluster, self.reporter),
            prepare_metadata=run.cluster is None,
            allowed=options.allowed,
            slot_watch=run.slot_watch,
        )
        self.sets.builds_with(self._ensure)

    def _ensure(self, release: Release, chain: Sequence[str]) -> Awaitable[BuiltWheel]:
        """The package's one task of this part (its pipeline, or the pure wheel an
        earlier Python's part made of the same source and plan), created on first need."""
        key = key_of(release)
        pure = self.run_.pure.get(key)
        if pure is not None and self._same_build(pure, release):
            return self.scheduler.ensure(
                key, functools.partial(self._take_pure, pure), lambda: self.reporter.queued(key)
            )
        return self.scheduler.ensure(
            key,
            lambda: self.pipeline.build(release, tuple(chain)),
            lambda: self.reporter.queued(key),
        )

    def _same_build(self, wheel: BuiltWheel, release: Release) -> bool:
        expected = release.sdist.hashes.get("sha256")
        return (
            expected is not None
            and not release.prebuilt
            and recorded_for(
                wheel.record, expected.lower(), self.plan_for(release).fingerprint(release.version)
            )
        )

    async def _take_pure(self, wheel: BuiltWheel) -> BuiltWheel:
        """A pure wheel built for an earlier Python serves this one as it is."""
        self.sets.needs.pop(wheel.key, None)  # it needs no build environment here
        self.oracle.record_built(wheel.source_metadata)
        self.reporter.finished(wheel.key, reused=True)
        return wheel

    def run(
        self,
        requirements: Sequence[Requirement],
        constraints: Mapping[NormalizedName, SpecifierSet],
    ) -> Settled:
        try:
            return asyncio.run(self._settle(requirements, constraints))
        finally:
            self.scheduler.close()
            self.sets.close()
            self.builder.close(keep_work=self.options.keep_work)

    async def _settle(
        self,
        requirements: Sequence[Requirement],
        constraints: Mapping[NormalizedName, SpecifierSet],
    ) -> Settled:
        self.scheduler.start()
        roots = list(requirements)
        try:
            await self._check_release_age(roots)
            if self.options.each:
                # Builds are shared: a package in several closures is one task of the run.
                settled = await asyncio.gather(
                    *(self._settle_alone(r, constraints) for r in requirements)
                )
                closures = [
                    (r, s.resolution)
                    for r, s in zip(requirements, settled, strict=True)
                    if s is not None
                ]
                roots = [r for r, _ in closures]
                install = next((s for s in settled if s is not None), BuildSet(EMPTY, ()))
            elif self.options.keep_going:
                install, roots = await self.sets.settle_roots(
                    requirements, constraints, self.failures
                )
            else:
                install = await self.sets.settle(
                    requirements, owner=None, chain=(), constraints=constraints
                )
        except BaseException:
            await self.scheduler.cancel_all()
            raise
        published: Set[NodeKey] = self.sets.used
        report = None
        if self.options.keep_going:
            publication = (
                merge_publications(
                    plan_publication(
                        [root],
                        closure,
                        self.environment,
                        self.scheduler.succeeded(),
                        self.sets.needs,
                    )
                    for root, closure in closures
                )
                if self.options.each
                else plan_publication(
                    roots,
                    install.resolution,
                    self.environment,
                    self.scheduler.succeeded(),
                    self.sets.needs,
                )
            )
            published, roots = publication.keys, list(publication.published)
            report = make_report(self.failures, requirements, publication, len(published))
            if not report.ok:
                for failure in report.failures:
                    logger.error(
                        "keep-going: %s %s: %s", failure.status, failure.label, failure.error
                    )
        if self.options.each:
            closures = [(r, closure) for r, closure in closures if r in roots]
        else:
            closures = [(r, install.resolution) for r in roots]
        for requirement, closure in closures:
            name = canonicalize_name(requirement.name)
            if name in closure.pins:
                self.graph.add_root(key_of(closure.pins[name]), requirement)
        built = {key: self.scheduler.result(key) for key in sorted(published)}
        if roots:
            # Every closure is settled: what each wheel's install closure ships is known.
            built = await self.scheduler.in_thread(functools.partial(self._repair, built))
        for key in sorted(published):
            wheel = built[key]
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
        return Settled(
            interpreter=self.interpreter,
            graph=graph,
            install=install.resolution,
            built=built,
            order=graph.build_order(),
            report=report,
            closures=closures,
            roots=roots,
        )

    async def _settle_alone(
        self, requirement: Requirement, constraints: Mapping[NormalizedName, SpecifierSet]
    ) -> BuildSet | None:
        """``requirement`` resolved and built on its own (``--each``); with keep_going, a
        requirement that does not resolve is a failure of its own (None), not the run's."""
        try:
            return await self.sets.settle(
                [requirement], owner=None, chain=(), constraints=constraints
            )
        except BootstrapError as e:
            if not self.options.keep_going:
                raise
            self.failures.root_failed(requirement, e)
            return None

    async def _check_release_age(self, roots: Sequence[Requirement]) -> None:
        """Refuse the release age at once on an index without upload times (with
        keep_going too: it is not a failure of each requirement)."""
        if self.options.release_age is None or not roots:
            return
        try:
            await self.scheduler.in_thread(
                functools.partial(self.finder.releases, canonicalize_name(roots[0].name))
            )
        except ReleaseAgeUnsupportedError:
            raise
        except BootstrapError:
            pass  # the resolution meets it again, and explains it in its own terms

    def _repair(self, built: Mapping[NodeKey, BuiltWheel]) -> dict[NodeKey, BuiltWheel]:
        """``built`` with the wheels whose settings say ``repair`` made portable."""
        run = self.run_
        with timed("repairing"):
            return repair_run(
                built,
                self.graph.edges(),
                lambda name: run.settings.for_package(name, self.options.variant),
                run.work_dir,
                run.publisher.wheels_dir,
                self.options.jobs,
            )

    def _stored_metadata(self, release: Release) -> CoreMetadata | None:
        """The metadata of the wheel an earlier run built from this very sdist."""
        found = self.store.lookup(release.name, release.version)
        expected = release.sdist.hashes.get("sha256")
        if found is None or expected is None or found[1].source_sha256 != expected.lower():
            return None
        _, metadata = self.store.metadata(found[0])
        # Under the source version, whatever rebuild number the wheel's version carries.
        return dataclasses.replace(metadata, version=release.version)
