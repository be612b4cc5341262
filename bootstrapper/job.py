"""``bootstrapper build NAME VERSION``: build one package version as a job.

The source comes from an archive index (``DIR/sdists`` or a URL), the build requirements
only from a given wheel index (a directory of wheels, a simple index directory, or a
URL): nothing is fetched from anywhere else, and a requirement the wheel index lacks is an
error, not a download. The wheel is published into the output index.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.tags import Tag
from packaging.utils import (
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_wheel_filename,
)
from packaging.version import Version

from .archive import DEFAULT_UNPACK_LIMITS, UnpackLimits
from .buildenv import EnvFactory
from .builder import BuildPlan, PackageBuilder, make_record, now
from .candidates import Release, prebuilt_releases, releases
from .credentials import redact_url
from .errors import BootstrapError, BuildError, UnknownProjectError
from .fsutil import sha256_file
from .http import HttpClient
from .index import DistFile, IndexClient, ProjectPage
from .metadata import CoreMetadata, parse_metadata, requirement_key
from .publish import IndexWriter, SourceIndexWriter
from .records import EnvWheel
from .resolve import resolve
from .sandbox import Sandbox
from .sources import SourceStore
from .store import WheelStore
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


@dataclass(frozen=True)
class JobResult:
    wheel: Path
    build_env: tuple[EnvWheel, ...]


def build_one(
    *,
    name: str,
    version: Version,
    sources: str,
    wheels: WheelIndex,
    output_dir: Path,
    http: HttpClient,
    plan_for: Callable[[Release], BuildPlan],
    isolation: Sequence[str],
    environment: dict[str, str],
    sandbox: Sandbox | None = None,
    unpack_limits: UnpackLimits = DEFAULT_UNPACK_LIMITS,
) -> JobResult:
    """Build ``name`` ``version`` from ``sources`` with requirements from ``wheels``."""
    project = canonicalize_name(name)
    work = output_dir / ".work"
    source_index = IndexClient(index_url_for(sources), http)
    try:
        page = source_index.project_page(project)
        candidates = [r for r in releases(page, wheels.python) if r.version == version]
    finally:
        source_index.close()
    if not candidates:
        raise BootstrapError(
            f"{project} {version}: no source archive of this version in {redact_url(sources)}",
            package=project,
        )
    release = candidates[0]
    plan = plan_for(release)
    store = SourceStore(http, work / "downloads", output_dir / "sdists")
    sdist, sdist_sha256 = store.fetch(release)
    builder = PackageBuilder(
        work,
        output_dir / "logs",
        EnvFactory(work / "uv-cache"),
        isolation=isolation,
        sandbox=sandbox,
        unpack_limits=unpack_limits,
    )
    chain = (project,)

    def environment_for(
        requirements: Sequence[Requirement],
    ) -> tuple[list[Path], tuple[EnvWheel, ...]]:
        try:
            resolution = resolve(requirements, wheels, wheels, environment=environment, chain=chain)
        except BootstrapError as e:
            raise BuildError(
                f"cannot build {project} {version}: a build requirement is missing from the "
                f"wheel index {wheels.location}",
                package=project,
                details=e.message + (f" (via {' -> '.join(e.chain)})" if e.chain else ""),
            ) from None
        paths, env = [], []
        for pin in resolution.pins.values():
            path, digest = wheels.wheel_file(pin)
            paths.append(path)
            env.append(EnvWheel(pin.name, str(pin.version), path.name, digest))
        return sorted(paths), tuple(sorted(env))

    started = now()
    with builder.log(release, fresh=True) as log, builder.step(release, log):
        tree = builder.prepare(release, sdist, plan, log)
        first, discovery_env = environment_for(tree.build_system.requires)
        extra = builder.discover(release, tree, first, plan, log)
        declared = {requirement_key(r) for r in tree.build_system.requires}
        backend_requires = [r for r in extra if requirement_key(r) not in declared]
        full, build_env = (
            environment_for([*tree.build_system.requires, *backend_requires])
            if backend_requires
            else (first, discovery_env)
        )
        wheel = builder.build(release, tree, full, plan, log)
    if tree.archive is not None:  # crates vendored: the vendored sdist is the source
        sdist, sdist_sha256 = tree.archive.path, tree.archive.sha256
    record = make_record(
        release=release,
        wheel=wheel,
        wheel_sha256=sha256_file(wheel),
        sdist=sdist,
        sdist_sha256=sdist_sha256,
        build_system=tree.build_system,
        backend_requires=backend_requires,
        discovery_env=discovery_env,
        build_env=build_env,
        started=started,
        log=builder.log_path(release),
        plan=plan,
        epoch=tree.epoch,
        patches_applied=tree.patches,
        vendored=tree.vendored,
        pass_env=builder.sandbox.pass_env,
    )
    store.archive(sdist)
    SourceIndexWriter(output_dir / "sdists").update([project], {sdist.name: sdist_sha256})
    kept = WheelStore(work / "built", output_dir / "wheels").add(wheel, record)
    publisher = IndexWriter(output_dir)
    [published] = publisher.publish(
        [(kept, read_wheel_metadata(kept), WheelStore.record_path(kept))]
    )
    builder.cleanup(release)
    return JobResult(published, build_env)
