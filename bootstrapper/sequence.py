"""Rebuild a recorded chain from its archived sources: ``build-sequence`` and ``verify``.

``build-order.json`` names every package, its source archive (with sha256), the exact
wheels of its build environment and the settings and patches that applied. Rebuilding
needs nothing else: no index, no network. Each package waits for the wheels of its build
environment, built earlier in the same sequence; independent ones build concurrently.
"""

from __future__ import annotations

import asyncio
import functools
import json
import shutil
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from .archive import DEFAULT_UNPACK_LIMITS, UnpackLimits
from .builder import SCRATCH_PARTS, BuildPlan
from .candidates import Release
from .cores import CoreBudget, Demand, demand_from_json
from .errors import BootstrapError, UsageError
from .fsutil import HASHES_FILE, kept_hashes, sha256_file
from .graph import NodeKey
from .index import DistFile
from .interpreters import Interpreter, current, find
from .patches import Patch
from .plugins import Plugins
from .progress import NullReporter, NullSlotWatch, Reporter, SlotWatch
from .provenance import write_provenance
from .publish import IndexWriter
from .records import EnvWheel
from .repair import repair_recorded
from .reproducible import first_difference
from .sandbox import Sandbox, end_running_backends
from .settings import PackageSettings, RequirementEdits, SourceSpec
from .signing import Signer
from .single_build import (
    BuildConfig,
    BuildUnit,
    BuiltWheel,
    Destination,
    EnvInput,
    FileRef,
    finish,
    reusable,
    reuse,
    unit_runner,
)
from .sources import archived_source
from .store import WheelStore
from .wheelfile import read_wheel_metadata

if TYPE_CHECKING:
    from .remote import DaskCluster

T = TypeVar("T")


class SequenceError(BootstrapError):
    """The build order or its archive is incomplete or inconsistent."""


@dataclass(frozen=True)
class OrderEntry:
    """One package of a build order."""

    name: NormalizedName
    version: Version
    wheel: str
    wheel_sha256: str
    sdist: str
    sdist_sha256: str
    build_env: tuple[EnvWheel, ...]
    plan: Mapping[str, Any]
    backend_requires: tuple[str, ...] = ()
    #: What the build needs of a Dask worker (the package's ``resources:`` setting).
    resources: Mapping[str, float] = field(default_factory=dict)
    #: What the build needs of the machine's cores (``exclusive``, ``cores``, ``memory``).
    demand: Demand = field(default_factory=Demand)
    #: The Python it was built with (``3.12``); empty in orders written before it was
    #: recorded: then the one rebuilding.
    python: str = ""
    #: The record's ``repair`` (see :mod:`.repair`): repeated after the build.
    repair: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> NodeKey:
        return NodeKey(self.name, self.version)

    @property
    def task(self) -> tuple[NodeKey, str]:
        """What names its build in a rebuild: one version may be built for several
        Pythons."""
        return (self.key, self.python)

    @property
    def built_wheel(self) -> str:
        """The wheel the build makes (``wheel`` is the repaired one, when it was)."""
        return str(self.repair["from_wheel"]) if self.repair.get("repaired") else self.wheel

    @property
    def prebuilt(self) -> bool:
        return self.sdist.endswith(".whl")


def read_build_order(path: Path) -> list[OrderEntry]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(raw, list):  # a {} would otherwise read as an empty order
            raise TypeError(f"a JSON {type(raw).__name__} where a list is expected")
        return [
            OrderEntry(
                name=canonicalize_name(item["name"]),
                version=Version(item["version"]),
                wheel=item["wheel"],
                wheel_sha256=item["wheel_sha256"],
                sdist=item["sdist"],
                sdist_sha256=item["sdist_sha256"],
                build_env=tuple(
                    EnvWheel(e["name"], _version_text(e["version"]), e["wheel"], e["sha256"])
                    for e in item.get("build_env", [])
                ),
                plan=item.get("plan", {}),
                backend_requires=tuple(item.get("backend_requires", ())),
                resources={str(k): float(v) for k, v in item.get("resources", {}).items()},
                demand=demand_from_json(item.get("scheduling", {})),
                python=str(item.get("python", "")),
                repair=item.get("repair", {}),
            )
            for item in raw
        ]
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror or e}") from None
    except (ValueError, KeyError, TypeError) as e:
        raise SequenceError(f"{path} is not a build order bootstrapper wrote: {e!r}") from None


def _version_text(text: str) -> str:
    """``text`` as written, once it is known to be a version (InvalidVersion otherwise,
    a ValueError the reader reports)."""
    Version(text)
    return text


def plan_from_record(entry: OrderEntry, patches_dir: Path) -> BuildPlan:
    """The build plan a build order recorded, with its patches found in ``patches_dir``
    (``DIR/patches``) and checked against their recorded sha256."""
    recorded = entry.plan
    settings_json = recorded.get("settings", {})
    requires = settings_json.get("requires", {})
    build_requires = settings_json.get("build-requires", {})
    reasons = tuple(settings_json.get("rebuild-reasons", ()))
    source = settings_json.get("source")
    settings = PackageSettings(
        env=recorded.get("env", {}),
        config_settings=settings_json.get("config-settings", {}),
        build_requires=RequirementEdits(
            remove=tuple(canonicalize_name(n) for n in build_requires.get("remove", [])),
            add=tuple(Requirement(r) for r in build_requires.get("add", [])),
        ),
        requires=RequirementEdits(
            remove=tuple(canonicalize_name(n) for n in requires.get("remove", [])),
            add=tuple(Requirement(r) for r in requires.get("add", [])),
        ),
        changelog={entry.version: reasons} if reasons else {},
        rebuild_scheme=settings_json.get("rebuild-scheme", "build-tag"),
        prebuilt=bool(settings_json.get("prebuilt", False)),
        source=SourceSpec(**source) if source else None,
        # Applied the same way as recorded: a fuzz once accepted is accepted again.
        patch_fuzz=int(settings_json.get("patch-fuzz", 0)),
        files=tuple(settings_json.get("files", ())),
        resources=entry.resources,
        exclusive=entry.demand.exclusive,
        cores=entry.demand.cores,
        memory=entry.demand.memory,
    )
    patches = []
    for item in recorded.get("patches", []):
        path = patches_dir / entry.name / str(entry.version) / item["file"]
        if not path.is_file():
            raise SequenceError(
                f"{entry.name} {entry.version} was built with the patch {item['file']}, "
                f"which is not in {path.parent}",
                package=entry.name,
            )
        digest = sha256_file(path)
        if digest != item["sha256"]:
            raise SequenceError(
                f"{path} is not the patch {entry.name} was built with (sha256 differs)",
                package=entry.name,
            )
        patches.append(Patch(path, digest))
    return BuildPlan(
        settings=settings,
        patches=tuple(patches),
        env=dict(recorded.get("env", {})),
        edit=settings.wheel_edit(entry.version),
        variant=recorded.get("variant"),
    )


class SequenceBuilder:
    """Rebuilds a build order into an output directory (its own index)."""

    def __init__(
        self,
        entries: Sequence[OrderEntry],
        *,
        sources_dir: Path,
        patches_dir: Path,
        output_dir: Path,
        jobs: int,
        isolation: Sequence[str],
        sandbox: Sandbox | None = None,
        force: bool = False,
        reporter: Reporter | None = None,
        unpack_limits: UnpackLimits = DEFAULT_UNPACK_LIMITS,
        plugins: Plugins | None = None,
        keep_work: bool = False,
        cluster: DaskCluster | None = None,
        slot_watch: SlotWatch | None = None,
        signer: Signer | None = None,
        pythons: Mapping[str, Interpreter] | None = None,
    ) -> None:
        self.entries = list(entries)
        #: The interpreter of each Python the order names, by ``3.12``.
        self.pythons = dict(pythons) if pythons is not None else interpreters_for(self.entries)
        #: Signs each wheel's provenance; None writes it unsigned.
        self.signer = signer
        #: Told when a build asks for, takes and gives back a job slot (the timeline).
        self.slot_watch = slot_watch or NullSlotWatch()
        self.sources_dir = sources_dir
        self.patches_dir = patches_dir
        self.output_dir = output_dir
        self.force = force
        self.reporter = reporter or NullReporter()
        self.publisher = IndexWriter(output_dir)
        config = BuildConfig(tuple(isolation), sandbox or Sandbox(), unpack_limits)
        self.cores = CoreBudget(config.sandbox.cores) if cluster is None else None
        several = len({e.python for e in self.entries}) > 1
        self.builders = {
            label: config.builder(
                output_dir / ".work",
                output_dir / "logs",
                plugins,
                self.cores,
                python=None if interpreter.is_current() else interpreter.executable,
                suffix=f"-py{label}" if several else "",
            )
            for label, interpreter in self.pythons.items()
        }
        self._run_unit = unit_runner(config, cluster, self.reporter)
        # Rebuilt wheels go straight beside the index, where the ones kept are found.
        self.store = WheelStore(self.publisher.wheels_dir, self.publisher.wheels_dir)
        self._destinations = {
            label: Destination(self.store, builder.cleanup, keep_work, self.reporter)
            for label, builder in self.builders.items()
        }
        self._keep_work = keep_work
        self._jobs = max(1, jobs)
        self._pool = ThreadPoolExecutor(max_workers=max(4, self._jobs * 2))
        #: The entry of each version for each Python; pure wheels serve every Python.
        self._by_task = {(e.name, str(e.version), e.python): e for e in self.entries}
        self._by_name_version = {(e.name, str(e.version)): e for e in reversed(self.entries)}

    def run(self) -> list[BuiltWheel]:
        for scratch in SCRATCH_PARTS:
            shutil.rmtree(self.output_dir / ".work" / scratch, ignore_errors=True)
        self.publisher.wheels_dir.mkdir(parents=True, exist_ok=True)
        try:
            with kept_hashes(self.output_dir / ".work" / HASHES_FILE):
                return asyncio.run(self._run())
        except KeyboardInterrupt:
            # Backends run in their own process groups, out of reach of a terminal's
            # Ctrl-C: end them, or the wait below would last until they finish.
            end_running_backends()
            raise
        finally:
            # Builds already running finish (a subprocess cannot be stopped cleanly)
            # before this returns, so nothing writes into the output afterwards.
            self._pool.shutdown(wait=True, cancel_futures=True)
            for builder in self.builders.values():
                builder.close(keep_work=self._keep_work)
            if self.cores is not None:
                self.cores.close()

    async def _run(self) -> list[BuiltWheel]:
        semaphore = asyncio.Semaphore(self._jobs)
        tasks: dict[tuple[NodeKey, str], asyncio.Future[BuiltWheel]] = {}

        async def build(entry: OrderEntry) -> BuiltWheel:
            try:
                deps = [self._dependency(entry, w) for w in entry.build_env]
                for dep in deps:
                    if dep is not None:
                        await tasks[dep.task]
                self.slot_watch.slot_asked(entry.key)
                async with semaphore:
                    self.slot_watch.slot_taken(entry.key)
                    try:
                        return await self._in_thread(functools.partial(self._build_one, entry))
                    finally:
                        self.slot_watch.slot_given_back(entry.key)
            except BootstrapError as e:
                self.reporter.failed(entry.key, e)
                raise

        for entry in self.entries:  # build order: every dependency is created first
            tasks[entry.task] = asyncio.ensure_future(build(entry))
            self.reporter.queued(entry.key)
        try:
            results = await asyncio.gather(*tasks.values())
        except BaseException:
            for task in tasks.values():
                task.cancel()
            await asyncio.gather(*tasks.values(), return_exceptions=True)
            raise
        results = await self._in_thread(functools.partial(self._repair, results))
        published = self.publisher.publish(
            (r.path, read_wheel_metadata(r.path), WheelStore.record_path(r.path)) for r in results
        )
        write_provenance(zip(published, (r.record for r in results), strict=True), self.signer)
        return list(results)

    def _entry_of(self, wheel: EnvWheel, python: str) -> OrderEntry | None:
        """The entry that builds ``wheel`` of a build environment for ``python``: the
        one for that Python, else the only one (a pure wheel serves every Python)."""
        name = canonicalize_name(wheel.name)
        return self._by_task.get((name, wheel.version, python)) or self._by_name_version.get(
            (name, wheel.version)
        )

    def _repair(self, results: Sequence[BuiltWheel]) -> list[BuiltWheel]:
        """``results`` (in the entries' order) with each wheel whose record asked for a
        repair repaired again as recorded; one Python's wheels at a time, as one version
        may have a wheel for each."""
        repaired: dict[int, BuiltWheel] = {}
        for python in dict.fromkeys(e.python for e in self.entries):
            picked = [i for i, e in enumerate(self.entries) if e.python == python]
            again = repair_recorded(
                [results[i] for i in picked],
                {self.entries[i].key: self.entries[i].repair for i in picked},
                self.output_dir / ".work",
                self.publisher.wheels_dir,
                self._jobs,
            )
            repaired.update(zip(picked, again, strict=True))
        return [repaired[i] for i in range(len(results))]

    def _dependency(self, entry: OrderEntry, wheel: EnvWheel) -> OrderEntry | None:
        dep = self._entry_of(wheel, entry.python)
        # Not rebuilt here: then it must already be in the output index.
        if dep is None and not (self.publisher.wheels_dir / wheel.filename).is_file():
            raise SequenceError(
                f"{entry.name} {entry.version} needs {wheel.name} {wheel.version} to "
                "build, which is neither in the build order nor in the output index",
                package=entry.name,
            )
        return dep

    async def _in_thread(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn)

    def _env_inputs(self, entry: OrderEntry) -> tuple[EnvInput, ...]:
        """The wheels of the entry's build environment as they are in the output (those
        rebuilt here under the names this rebuild gave them)."""
        inputs = []
        for wheel in entry.build_env:
            dep = self._entry_of(wheel, entry.python)
            filename = dep.built_wheel if dep is not None else wheel.filename
            path = self.publisher.wheels_dir / filename
            if not path.is_file():
                raise SequenceError(
                    f"{entry.name} {entry.version}: its build requirement {filename} is missing "
                    f"from {self.publisher.wheels_dir}",
                    package=entry.name,
                )
            inputs.append(
                EnvInput(EnvWheel(wheel.name, wheel.version, filename, sha256_file(path)), path)
            )
        return tuple(sorted(inputs, key=lambda e: e.wheel))

    def _source(self, entry: OrderEntry) -> FileRef:
        sdist = archived_source(self.sources_dir, entry.sdist)
        if not sdist.is_file():
            raise SequenceError(
                f"{entry.name} {entry.version}: its source {entry.sdist} is not in {sdist.parent}",
                package=entry.name,
            )
        if sha256_file(sdist) != entry.sdist_sha256:
            raise SequenceError(
                f"{sdist} is not the source {entry.name} was built from (sha256 differs)",
                package=entry.name,
            )
        return FileRef(sdist, entry.sdist_sha256)

    def _build_one(self, entry: OrderEntry) -> BuiltWheel:
        builder = self.builders[entry.python]
        source = self._source(entry)
        release = Release(
            entry.name,
            entry.version,
            DistFile(entry.sdist, source.path.as_uri(), {"sha256": entry.sdist_sha256}),
        )
        env = self._env_inputs(entry)
        unit = BuildUnit(
            release=release,
            plan=plan_from_record(entry, self.patches_dir),
            source=source,
            build_env=env,
            # Only the build environment is known: the rebuild asks the backend nothing.
            discovery_env=tuple(e.wheel for e in env),
            backend_requires=tuple(Requirement(r) for r in entry.backend_requires),
            expected_wheel=entry.built_wheel,
            # The plan exactly as recorded, so the rebuild's record says the same.
            plan_json=entry.plan,
        )
        if not self.force:
            found = self.store.lookup(entry.name, entry.version, wheel=entry.built_wheel)
            if found is not None and reusable(found[1], unit):
                return reuse(unit, found, self.reporter, builder.log_path(release))
        self.reporter.started(entry.key, "building")
        with builder.log(release, fresh=True) as log:
            recorded = {w.filename: w.sha256 for w in entry.build_env}
            for wheel_in_env in unit.env_wheels():
                if recorded.get(wheel_in_env.filename) != wheel_in_env.sha256:
                    log.write(
                        f"note: {wheel_in_env.filename} in the build environment is not "
                        "byte-identical to the one recorded in the build order\n".encode()
                    )
            output = self._run_unit(unit, builder, log=log)
        return finish(unit, output, self._destinations[entry.python])


def interpreters_for(
    entries: Sequence[OrderEntry], given: Mapping[str, Interpreter] | None = None
) -> dict[str, Interpreter]:
    """The interpreter of each Python the entries name (``3.12``): the one ``given``
    for it, else found as ``--python 3.12`` finds it; an entry that names none is
    rebuilt with this one."""
    found: dict[str, Interpreter] = {}
    for label in dict.fromkeys(e.python for e in entries):
        if given and label in given:
            found[label] = given[label]
        elif not label or label == current().label:
            found[label] = current()
        else:
            found[label] = _find(label, entries)
    return found


def _find(label: str, entries: Sequence[OrderEntry]) -> Interpreter:
    try:
        return find(label)
    except UsageError:
        names = sorted({str(e.name) for e in entries if e.python == label})
        raise UsageError(
            f"the build order was built with Python {label} ({', '.join(names[:5])}"
            f"{', ...' if len(names) > 5 else ''}), which is not on PATH, known to uv "
            "or in pyenv; give it with --python PATH"
        ) from None


def compare(original_dir: Path, rebuilt: Sequence[BuiltWheel]) -> list[tuple[str, str | None]]:
    """For each rebuilt wheel (by file name), ``None`` if identical to the original in
    ``original_dir``, else what differs."""
    results: list[tuple[str, str | None]] = []
    for built in rebuilt:
        original = original_dir / built.path.name
        if not original.is_file():
            results.append((built.path.name, f"no original {original}"))
        else:
            results.append((built.path.name, first_difference(original, built.path)))
    return results
