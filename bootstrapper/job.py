"""``bootstrapper build NAME VERSION``: build one package version as a job.

The source comes from an archive index (``DIR/sdists`` or a URL), the build requirements
only from a given wheel index (a directory of wheels, a simple index directory, or a
URL): nothing is fetched from anywhere else, and a requirement the wheel index lacks is an
error, not a download. The wheel is published into the output index.
"""

from __future__ import annotations

import dataclasses
import sys
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from packaging.requirements import Requirement
from packaging.tags import Tag, sys_tags
from packaging.utils import (
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_wheel_filename,
)
from packaging.version import Version

from .builder import BuildPlan
from .buildsystem import beyond_declared
from .candidates import Release, prebuilt_releases
from .cores import CoreBudget
from .credentials import redact_url
from .errors import BootstrapError, BuildError, UnknownProjectError
from .finder import IndexFinder
from .fsutil import sha256_file
from .http import HttpClient
from .index import DistFile, IndexClient, ProjectPage
from .metadata import CoreMetadata, parse_metadata
from .plugins import Plugins
from .progress import NullReporter
from .publish import IndexWriter, SourceIndexWriter
from .records import EnvWheel
from .resolve import resolve
from .settings import PackageSettings
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
    run_unit,
)
from .sources import PREBUILT_DIR, SourceStore, fetch_planned_source
from .store import KEPT_METADATA_DIR, WheelStore
from .wheelfile import read_wheel_metadata


def index_url_for(location: str) -> str:
    """A URL for an index given as a URL or a directory."""
    if "://" in location:
        return location if location.endswith("/") else location + "/"
    return Path(location).absolute().as_uri() + "/"


class WheelIndex:
    """Build requirements from a wheel index only: a ``ReleaseFinder`` whose releases are
    wheels, and the ``MetadataSource`` that reads them. A flat directory of wheels works
    as well as a simple index."""

    def __init__(self, location: str, http: HttpClient, downloads: Path, tags: Sequence[Tag]):
        #: What errors show: the location without credentials.
        self.location = redact_url(location)
        self._tags = tags
        self.python = Version(".".join(map(str, sys.version_info[:3])))
        self._store = SourceStore(http, downloads, downloads)
        path = Path(location) if "://" not in location else None
        self._flat: dict[NormalizedName, list[DistFile]] | None = None
        if path is not None and path.is_dir() and not (path / "index.html").is_file():
            self._flat = _flat_pages(path)
        self._index = IndexClient(index_url_for(location), http)

    def _page(self, name: NormalizedName) -> ProjectPage:
        if self._flat is not None:
            files = self._flat.get(name)
            if not files:
                raise UnknownProjectError(f"{name} is not in the wheel index {self.location}")
            return ProjectPage(name, self.location, tuple(files))
        try:
            return self._index.project_page(name)
        except UnknownProjectError as e:
            raise UnknownProjectError(
                f"{name} is not in the wheel index {self.location}", package=name
            ) from e

    def releases(self, name: NormalizedName) -> Sequence[Release]:
        return prebuilt_releases(self._page(name), self.python, self._tags)

    def has_files(self, name: NormalizedName) -> bool:
        try:
            return bool(self._page(name).files)
        except UnknownProjectError:
            return False

    def prefetch(self, names: Iterable[NormalizedName]) -> None:
        pass

    def metadata(self, release: Release, chain: Sequence[str]) -> CoreMetadata:
        wheel, _ = self._store.fetch(release)
        return parse_metadata(read_wheel_metadata(wheel), wheel.name)

    def anticipate(self, requirements: Sequence[Requirement], chain: Sequence[str]) -> None:
        pass

    def ready(self, release: Release) -> bool:
        return True  # a wheel: its METADATA is a download away, never a build

    def wheel_file(self, release: Release) -> tuple[Path, str]:
        return self._store.fetch(release)

    def close(self) -> None:
        self._index.close()


def _flat_pages(directory: Path) -> dict[NormalizedName, list[DistFile]]:
    pages: dict[NormalizedName, list[DistFile]] = defaultdict(list)
    for path in sorted(directory.glob("*.whl")):
        try:
            name, _, _, _ = parse_wheel_filename(path.name)
        except InvalidWheelFilename:
            continue
        pages[name].append(
            DistFile(path.name, path.absolute().as_uri(), {"sha256": sha256_file(path)})
        )
    return pages


def find_release(
    project: NormalizedName,
    version: Version,
    sources: str,
    http: HttpClient,
    settings: PackageSettings,
    python: Version,
    tags: Sequence[Tag],
) -> Release:
    """The release to build from ``sources`` as the package's settings make it: the
    upstream wheel for ``prebuilt: true`` (in ``sources/prebuilt/`` where a bootstrap's
    ``DIR/sdists`` keeps it), a stand-in for an archive its ``source:`` names."""
    local = Path(sources) if "://" not in sources else None
    if settings.prebuilt and local is not None and (local / PREBUILT_DIR).is_dir():
        files = _flat_pages(local / PREBUILT_DIR).get(project, [])
        found = prebuilt_releases(ProjectPage(project, sources, tuple(files)), python, tags)
    else:
        index = IndexClient(index_url_for(sources), http)
        finder = IndexFinder(
            index,
            python,
            prebuilt=lambda name: settings.prebuilt,
            external_source=lambda name: settings.source is not None,
            tags=tags,
        )
        try:
            found = list(finder.releases(project))
        finally:
            index.close()
    candidates = [r for r in found if r.version == version]
    if not candidates:
        what = "wheel" if settings.prebuilt else "source archive"
        raise BootstrapError(
            f"{project} {version}: no {what} of this version in {redact_url(sources)}",
            package=project,
        )
    return candidates[0]


def build_one(
    *,
    name: str,
    version: Version,
    sources: str,
    wheels: WheelIndex,
    output_dir: Path,
    http: HttpClient,
    settings_for: Callable[[NormalizedName], PackageSettings],
    plan_for: Callable[[Release], BuildPlan],
    environment: dict[str, str],
    config: BuildConfig,
    plugins: Plugins,
    keep_work: bool = False,
) -> BuiltWheel:
    """Build ``name`` ``version`` from ``sources`` with requirements from ``wheels``;
    returns the published wheel (a valid one built earlier into ``output_dir`` is kept)."""
    project = canonicalize_name(name)
    work = output_dir / ".work"
    release = find_release(
        project, version, sources, http, settings_for(project), wheels.python, list(sys_tags())
    )
    plan = plan_for(release)
    store = SourceStore(http, work / "downloads", output_dir / "sdists")
    # Its FIFO is made by the first backend call, and removed when the build is over.
    cores = CoreBudget(config.sandbox.cores)
    builder = config.builder(work, output_dir / "logs", plugins, cores)
    source = FileRef(
        *fetch_planned_source(
            release, plan.settings, store, http, plugins, builder.context(release, plan)
        )
    )
    kept = WheelStore(work / "built", output_dir / "wheels", metadata_dir=work / KEPT_METADATA_DIR)
    chain = (project,)

    def environment_for(requirements: Sequence[Requirement]) -> tuple[EnvInput, ...]:
        try:
            resolution = resolve(requirements, wheels, wheels, environment=environment, chain=chain)
        except BootstrapError as e:
            raise BuildError(
                f"cannot build {project} {version}: a build requirement is missing from the "
                f"wheel index {wheels.location}",
                package=project,
                details=e.message + (f" (via {' -> '.join(e.chain)})" if e.chain else ""),
            ) from None
        env = []
        for pin in resolution.pins.values():
            path, digest = wheels.wheel_file(pin)
            env.append(EnvInput(EnvWheel(pin.name, str(pin.version), path.name, digest), path))
        return tuple(sorted(env, key=lambda e: e.wheel))

    with cores, builder.log(release, fresh=True) as log:
        tree = None
        unit = BuildUnit(release, plan, source)
        if not release.prebuilt:
            with builder.step(release, log):
                tree = builder.prepare(release, source.path, plan, log)
                discovery = environment_for(tree.build_system.requires)
                requested = builder.discover(
                    release, tree, sorted(e.path for e in discovery), plan, log
                )
                extra = beyond_declared(tree.build_system, requested)
                build_env = (
                    environment_for([*tree.build_system.requires, *extra]) if extra else discovery
                )
            if tree.archive is not None:  # crates vendored: the vendored sdist is the source
                source = FileRef(tree.archive.path, tree.archive.sha256)
            unit = BuildUnit(
                release,
                plan,
                source,
                build_env,
                discovery_env=tuple(e.wheel for e in discovery),
                backend_requires=tuple(requested),
            )
        found = kept.lookup(release.name, release.version)
        valid = found if found is not None and reusable(found[1], unit) else None
        output = run_unit(unit, builder, log=log, prepared=tree) if valid is None else None
    reporter = NullReporter()
    if valid is not None:
        built = reuse(unit, valid, reporter, builder.log_path(release))
    else:
        assert output is not None
        built = finish(unit, output, Destination(kept, builder.cleanup, keep_work, reporter))
    builder.close(keep_work=keep_work)
    store.archive(unit.source.path)
    if not release.prebuilt:  # an upstream wheel travels with the sources, but is not one
        SourceIndexWriter(output_dir / "sdists").update(
            [project], {source.path.name: source.sha256}
        )
    [published] = IndexWriter(output_dir).publish(
        [(built.path, read_wheel_metadata(built.path), WheelStore.record_path(built.path))]
    )
    return dataclasses.replace(built, path=published)
