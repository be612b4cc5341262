"""Building one package as a unit: frozen inputs in, a wheel, its record and its log out.

Every command ends a build the same way: :func:`run_unit` makes the wheel and its record
from a :class:`BuildUnit`, and :func:`finish` checks, stores and reports it. A unit names
every file it needs by path and sha256 and holds no reference to a run, so it pickles and
can run in another process or on another machine given only those files (relocated with
:meth:`BuildUnit.relocated`); :func:`finish` stays with the command that coordinates.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from packaging.requirements import Requirement

from . import fsutil
from .archive import DEFAULT_UNPACK_LIMITS, UnpackLimits
from .buildenv import EnvFactory
from .builder import BuildPlan, PackageBuilder, SourceTree, make_record, now
from .buildsystem import BuildSystem
from .candidates import Release
from .cores import CoreBudget
from .errors import BuildError
from .fsutil import sha256_file
from .graph import NodeKey
from .metadata import CoreMetadata, parse_metadata
from .plugins import Plugins
from .progress import Reporter
from .records import BuildRecord, EnvWheel
from .sandbox import Sandbox
from .sbom.wheel import SBOM_RECIPE, WHEEL_SBOM, PatchText, WheelInputs, wheel_sbom
from .store import WheelStore
from .wheelfile import read_wheel_metadata

if TYPE_CHECKING:
    from .remote import DaskCluster

#: What a record names as the backend of a wheel taken from the index as it is.
PREBUILT_BACKEND = "(prebuilt upstream wheel)"


@dataclass(frozen=True)
class FileRef:
    """A file a unit needs: where it is, and the sha256 it must have."""

    path: Path
    sha256: str


@dataclass(frozen=True)
class EnvInput:
    """One wheel of a build environment: what the record names, and where it is."""

    wheel: EnvWheel
    path: Path


@dataclass(frozen=True)
class BuildUnit:
    """Everything that decides the wheel of one package version.

    ``source`` is the archive to build (the vendored sdist where crates were vendored),
    or, for a prebuilt release, the upstream wheel to take. ``discovery_env`` and
    ``backend_requires`` only go into the record: the backend was asked for its
    requirements before the build environment could be known.
    """

    release: Release
    plan: BuildPlan
    source: FileRef
    build_env: tuple[EnvInput, ...] = ()
    discovery_env: tuple[EnvWheel, ...] = ()
    #: What the backend's ``get_requires_for_build_wheel`` returned, as it returned it.
    backend_requires: tuple[Requirement, ...] = ()
    #: The record's ``fallback`` marker (a prebuilt wheel standing in for a failure).
    fallback: str | None = None
    #: The wheel file name the build must produce (a rebuild of a recorded build order).
    expected_wheel: str | None = None
    #: The plan as a build order recorded it, kept verbatim in the new record.
    plan_json: Mapping[str, Any] | None = None

    @property
    def key(self) -> NodeKey:
        return NodeKey(self.release.name, self.release.version)

    def env_wheels(self) -> tuple[EnvWheel, ...]:
        return tuple(sorted(e.wheel for e in self.build_env))

    def plan_fingerprint(self) -> dict[str, Any]:
        if self.plan_json is not None:
            return dict(self.plan_json)
        return self.plan.fingerprint(self.release.version)

    def input_files(self) -> dict[str, FileRef]:
        """Every file the unit reads, by role: what a remote executor ships."""
        files = {"source": self.source}
        files.update(
            {f"env:{e.wheel.filename}": FileRef(e.path, e.wheel.sha256) for e in self.build_env}
        )
        files.update(
            {f"patch:{i}": FileRef(p.path, p.sha256) for i, p in enumerate(self.plan.patches)}
        )
        return files

    def relocated(self, paths: Mapping[str, Path]) -> BuildUnit:
        """The same unit reading its files (by the roles of :meth:`input_files`) from
        ``paths``: on a worker, the local copies of the coordinator's files."""
        patches = tuple(
            dataclasses.replace(p, path=paths[f"patch:{i}"])
            for i, p in enumerate(self.plan.patches)
        )
        return dataclasses.replace(
            self,
            source=FileRef(paths["source"], self.source.sha256),
            build_env=tuple(
                EnvInput(e.wheel, paths[f"env:{e.wheel.filename}"]) for e in self.build_env
            ),
            plan=dataclasses.replace(self.plan, patches=patches),
        )


@dataclass(frozen=True)
class BuildConfig:
    """How every unit of a run is built (picklable: a worker makes its builder from it)."""

    isolation: tuple[str, ...] = ()
    sandbox: Sandbox = field(default_factory=Sandbox)
    unpack_limits: UnpackLimits = DEFAULT_UNPACK_LIMITS

    def builder(
        self,
        work_dir: Path,
        logs_dir: Path,
        plugins: Plugins | None = None,
        cores: CoreBudget | None = None,
        *,
        python: Path | None = None,
        suffix: str = "",
    ) -> PackageBuilder:
        """A builder working in ``work_dir`` (its own uv cache there); the installed
        plugins unless ``plugins`` is given; its backends share ``cores``; environments
        made with ``python`` (default: this interpreter), logs and work directories
        named with ``suffix``."""
        return PackageBuilder(
            work_dir,
            logs_dir,
            EnvFactory(work_dir / "uv-cache", **({"python": str(python)} if python else {})),
            Plugins.discover() if plugins is None else plugins,
            isolation=self.isolation,
            sandbox=self.sandbox,
            unpack_limits=self.unpack_limits,
            cores=cores,
            suffix=suffix,
        )


@dataclass(frozen=True)
class UnitOutput:
    """What :func:`run_unit` made: the wheel (in the builder's scratch), its record, the log."""

    wheel: Path
    record: BuildRecord
    log: Path
    #: The Dask worker that built it; None for a build on this machine.
    worker: str | None = None


@dataclass(frozen=True)
class BuiltWheel:
    """A finished build (or a stored one still valid): the one result every command gets."""

    key: NodeKey
    path: Path
    record: BuildRecord
    log: Path
    metadata: CoreMetadata
    reused: bool

    @property
    def source_metadata(self) -> CoreMetadata:
        """The wheel's metadata as resolution sees it: under the source version, whatever
        rebuild number the wheel's own version carries."""
        return dataclasses.replace(self.metadata, version=self.key.version)

    def env_wheel(self) -> EnvWheel:
        return EnvWheel(
            self.key.name, str(self.key.version), self.path.name, self.record.wheel_sha256
        )


def recorded_for(record: BuildRecord, source_sha256: str, plan: Mapping[str, Any]) -> bool:
    """Whether ``record`` is of this source under this plan. The source counts as the
    same when it is the upstream archive or the vendored one made from it: vendoring
    is reproducible, and a re-run knows one or the other depending on how far it got."""
    return source_sha256 in (record.sdist_sha256, record.source_sha256) and record.plan == plan


def reusable(record: BuildRecord, unit: BuildUnit) -> bool:
    """The reuse predicate of every command: whether a stored wheel, already proven intact
    by its sha256, is what ``unit`` would build."""
    return (
        recorded_for(record, unit.source.sha256, unit.plan_fingerprint())
        and record.build_env == unit.env_wheels()
        and record.fallback == unit.fallback
    )


def run_unit(
    unit: BuildUnit,
    builder: PackageBuilder,
    *,
    log: BinaryIO | None = None,
    prepared: SourceTree | None = None,
) -> UnitOutput:
    """Make the wheel of ``unit`` and its record. ``log`` continues the package's open
    log (else a fresh one is written); ``prepared`` is a tree the caller already
    prepared from ``unit.source`` with this builder, so it is not unpacked twice."""
    if log is None:
        with builder.log(unit.release, fresh=True) as fresh:
            return run_unit(unit, builder, log=fresh, prepared=prepared)
    release = unit.release
    started = now()
    with builder.step(release, log):
        if release.prebuilt:
            log.write(f"== prebuilt: taking {unit.source.path.name} as it is\n".encode())
            wheel = builder.take_prebuilt(release, unit.source.path, unit.plan, log)
            tree, grant = None, None
        else:
            tree = prepared or builder.prepare(release, unit.source.path, unit.plan, log)
            with builder.lease(unit.plan.settings.demand(), log) as grant:
                wheel = builder.build(
                    release,
                    tree,
                    sorted(e.path for e in unit.build_env),
                    unit.plan,
                    log,
                    grant,
                    dist_info_files=unit_sbom(unit),
                )
        finished = now()
        record = make_record(
            release=release,
            wheel=wheel,
            wheel_sha256=sha256_file(wheel),
            sdist=unit.source.path,
            sdist_sha256=unit.source.sha256,
            build_system=tree.build_system if tree else BuildSystem((), PREBUILT_BACKEND),
            backend_requires=unit.backend_requires,
            discovery_env=unit.discovery_env,
            build_env=unit.env_wheels(),
            started=started,
            log=builder.log_path(release),
            plan=unit.plan,
            epoch=tree.epoch if tree else None,
            plan_json=unit.plan_fingerprint(),
            patches_applied=tree.patches if tree else (),
            vendored=tree.vendored if tree else None,
            pass_env=builder.sandbox.pass_env if tree else (),
            python=builder.interpreter.description,
            finished=finished,
            grant=grant,
        )
    return UnitOutput(
        wheel, dataclasses.replace(record, fallback=unit.fallback), builder.log_path(release)
    )


def unit_sbom(unit: BuildUnit) -> dict[str, bytes]:
    """The SBOM the wheel of ``unit`` carries (PEP 770), by its path in the
    ``.dist-info`` directory; none for a plan of a recipe before SBOMs (a recorded
    build order rebuilt as it was built)."""
    if unit.plan_fingerprint().get("recipe", 0) < SBOM_RECIPE:
        return {}
    release = unit.release
    inputs = WheelInputs(
        name=release.name,
        version=str(unit.plan.edit.new_version(release.version)),
        source_version=str(release.version),
        source=unit.source.path.name,
        source_sha256=unit.source.sha256,
        build_env=unit.env_wheels(),
        patches=[PatchText(p.path.name, p.sha256, p.path.read_bytes()) for p in unit.plan.patches],
    )
    return {WHEEL_SBOM: wheel_sbom(inputs)}


class UnitRunner(Protocol):
    """What makes a unit's wheel: :func:`run_unit` here, or a remote executor."""

    def __call__(
        self,
        unit: BuildUnit,
        builder: PackageBuilder,
        *,
        log: BinaryIO | None = None,
        prepared: SourceTree | None = None,
    ) -> UnitOutput: ...


def unit_runner(config: BuildConfig, cluster: DaskCluster | None, reporter: Reporter) -> UnitRunner:
    """How a command's builds run: here, or as tasks on ``cluster`` (Dask is imported
    only then)."""
    if cluster is None:
        return run_unit
    from .remote_build import DaskUnitRunner

    return DaskUnitRunner(cluster, config, reporter)


@dataclass(frozen=True)
class Destination:
    """Where a command's finished builds go, and how it cleans up and reports."""

    store: WheelStore
    cleanup: Callable[[Release], None]
    keep_work: bool
    reporter: Reporter


def finish(unit: BuildUnit, output: UnitOutput, destination: Destination) -> BuiltWheel:
    """The one finishing step: check that the wheel is the package, version and bytes
    the unit and its record say, store it with its record, clean up (unless the work is
    kept) and report."""
    release = unit.release
    wheel = output.wheel
    metadata_bytes = read_wheel_metadata(wheel)
    metadata = parse_metadata(metadata_bytes, wheel.name)
    expected = unit.plan.edit.new_version(release.version)

    def refuse(message: str) -> BuildError:
        return BuildError(message, package=release.name, log_path=output.log)

    if (metadata.name, metadata.version) != (release.name, expected):
        raise refuse(
            f"{release}: the backend built {wheel.name}, which is "
            f"{metadata.name} {metadata.version}"
        )
    if unit.expected_wheel is not None and wheel.name != unit.expected_wheel:
        raise refuse(
            f"{release.name} {release.version}: the rebuild produced {wheel.name}, "
            f"the build order expects {unit.expected_wheel}"
        )
    record = output.record
    if (record.name, record.version, record.wheel) != (
        release.name,
        str(release.version),
        wheel.name,
    ):
        raise refuse(
            f"{release}: the build record describes {record.name} {record.version} ({record.wheel})"
        )
    # The bytes stored are the bytes the record vouches for (a wheel may have travelled).
    if sha256_file(wheel) != record.wheel_sha256:
        raise refuse(f"{release}: {wheel.name} does not match the sha256 of its build record")
    stored = destination.store.add(wheel, record, metadata=metadata_bytes)
    if not destination.keep_work:
        # The stored wheel is a hard link to the built one: removing that link changes
        # its ctime, and the digest the store just made must stand for the next run too.
        known = fsutil.HASHES.known(stored)
        destination.cleanup(release)
        if known is not None:
            fsutil.HASHES.relinked(stored, known)
    destination.reporter.finished(unit.key, reused=False, where=output.worker)
    return BuiltWheel(unit.key, stored, record, output.log, metadata, reused=False)


def reuse(
    unit: BuildUnit,
    found: tuple[Path, BuildRecord],
    reporter: Reporter,
    log: Path,
    metadata: CoreMetadata | None = None,
) -> BuiltWheel:
    """The stored wheel ``found`` (already judged :func:`reusable`) as the unit's result
    (``metadata``: its METADATA, when the caller has read it)."""
    path, record = found
    if metadata is None:
        metadata = parse_metadata(read_wheel_metadata(path), path.name)
    reporter.finished(unit.key, reused=True)
    return BuiltWheel(unit.key, path, record, log, metadata, reused=True)
