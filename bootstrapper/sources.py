"""Source archives: download once, verify against the index's hash, keep."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path

from .candidates import Release
from .credentials import redact_text, redact_url
from .errors import BootstrapError, FetchError
from .fsutil import atomic_copy, copy_unless_identical, hash_file, sha256_file
from .http import HttpClient, strongest_hash
from .plugins import PluginContext, Plugins
from .reproducible import write_tarball
from .settings import PackageSettings, expand

#: Where ``DIR/sdists`` keeps the upstream wheels of ``prebuilt: true`` packages.
PREBUILT_DIR = "prebuilt"


class SourceStore:
    """Downloads go to a private cache; :meth:`archive` puts the ones actually built into
    ``DIR/sdists``."""

    def __init__(self, http: HttpClient, downloads_dir: Path, sdists_dir: Path) -> None:
        self._http = http
        self.downloads_dir = downloads_dir
        self.sdists_dir = sdists_dir
        self._locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)
        self._guard = threading.Lock()
        self._verified: dict[str, str] = {}

    def _lock(self, filename: str) -> threading.Lock:
        with self._guard:
            return self._locks[filename]

    def fetch(self, release: Release) -> tuple[Path, str]:
        """The verified local sdist of ``release`` and its sha256."""
        file = release.sdist
        with self._lock(file.filename):
            if file.filename in self._verified:
                return self.downloads_dir / file.filename, self._verified[file.filename]
            if strongest_hash(file.hashes) is None:
                raise FetchError(
                    f"the index gives no sha256 for {file.filename}; refusing an unverified "
                    "download",
                    package=release.name,
                )
            dest = self.downloads_dir / file.filename
            sha256 = self._existing(dest, file.hashes)
            if sha256 is None:
                try:
                    sha256 = self._http.download(file.url, dest, file.hashes)
                except BootstrapError as e:
                    e.package = e.package or release.name
                    raise
            self._verified[file.filename] = sha256
            return dest, sha256

    @staticmethod
    def _existing(path: Path, hashes: Mapping[str, str]) -> str | None:
        """The sha256 of an earlier download if it still matches the index, else None."""
        algorithm = strongest_hash(hashes)
        if algorithm is None or not path.is_file():
            return None
        # sha256 through the run's cache (kept between runs: a re-run does not read every
        # source again); another algorithm the index chose is hashed as it comes.
        digest = sha256_file(path) if algorithm == "sha256" else hash_file(path, algorithm)
        if digest != hashes[algorithm].lower():
            path.unlink()
            return None
        return digest if algorithm == "sha256" else sha256_file(path)

    def archive(self, path: Path) -> Path:
        """Keep ``path`` in ``DIR/sdists`` as a source some build used (an upstream wheel
        taken as it is, in ``DIR/sdists/prebuilt/``)."""
        dest = archived_source(self.sdists_dir, path.name)
        copy_unless_identical(path, dest)
        return dest


def fetch_planned_source(
    release: Release,
    settings: PackageSettings,
    store: SourceStore,
    http: HttpClient,
    plugins: Plugins,
    context: PluginContext,
) -> tuple[Path, str]:
    """The source archive to build and its sha256: a plugin's ``fetch_source``, else the
    settings' ``source``, else the index's file (hash-checked); every command that
    fetches a source asks this, so each honours the same settings and plugins."""
    from_plugin = plugins.call(release.name, "fetch_source", context)
    if from_plugin is not None:
        path = Path(from_plugin)
        if not path.is_file():
            raise BootstrapError(
                f"the {release.name} plugin's fetch_source returned {path}, which is not a file",
                package=release.name,
            )
        dest = store.downloads_dir / path.name
        if path.resolve() != dest.resolve():
            atomic_copy(path, dest, link=False)  # the plugin's file is not ours to share
        return dest, sha256_file(dest)
    spec = settings.source
    if spec is None or release.prebuilt:
        return store.fetch(release)
    variables = {**os.environ, "version": str(release.version)}
    stem = f"{release.name.replace('-', '_')}-{release.version}"
    try:
        if spec.url is not None:
            url = expand(spec.url, variables, "source.url")
            suffix = ".zip" if url.lower().endswith(".zip") else ".tar.gz"
            dest = store.downloads_dir / f"{stem}{suffix}"
            return dest, fetch_url(http, url, dest)
        assert spec.git is not None
        ref = expand(spec.ref or "${version}", variables, "source.ref")
        dest = store.downloads_dir / f"{stem}.tar.gz"
        return dest, fetch_git(
            expand(spec.git, variables, "source.git"), ref, stem, dest, context.work_dir
        )
    except BootstrapError as e:
        e.package = release.name
        e.details = "\n".join(
            filter(
                None,
                [
                    e.details,
                    f"the source is the 'source' setting of {release.name} in "
                    f"{' and '.join(settings.files)}; a machine that cannot reach "
                    "it can take the upstream wheel instead with 'prebuilt: true'",
                ],
            )
        )
        raise


def archived_source(sdists_dir: Path, filename: str) -> Path:
    """Where ``DIR/sdists`` keeps the archive ``filename``."""
    if filename.endswith(".whl"):
        return sdists_dir / PREBUILT_DIR / filename
    return sdists_dir / filename


def fetch_url(http: HttpClient, url: str, dest: Path) -> str:
    """Download a source archive named by the user's settings; returns its sha256 (which
    the build record keeps: the settings give no hash to check it against)."""
    return http.download(url, dest, {}, require_hash=False)


def fetch_git(repository: str, ref: str, prefix: str, dest: Path, work: Path) -> str:
    """Archive ``ref`` of a git repository, submodules included, as an sdist-like
    ``.tar.gz`` (top directory ``prefix``, times set to the commit's); returns its
    sha256."""
    git = shutil.which("git")
    if git is None:
        raise FetchError("the 'git' program is needed for a 'source: {git: ...}' setting")
    checkout = work / f"git-{prefix}"
    shutil.rmtree(checkout, ignore_errors=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        _git(git, ["clone", "--quiet", "--no-checkout", repository, str(checkout)], "clone")
        here = ["-C", str(checkout)]
        try:  # a tag or a commit; else a branch, known after a clone as origin/<branch>
            _git(git, [*here, "checkout", "--quiet", "--detach", ref], f"checkout of {ref!r}")
        except FetchError:
            _git(
                git,
                [*here, "checkout", "--quiet", "--detach", f"origin/{ref}"],
                f"checkout of {ref!r}",
            )
        if (checkout / ".gitmodules").is_file():
            _git(
                git,
                [*here, "submodule", "update", "--quiet", "--init", "--recursive"],
                "submodule update",
            )
        epoch = int(_git(git, [*here, "log", "-1", "--format=%ct"], "log").strip())
        write_tarball(checkout, prefix, dest, epoch, skip={".git"})
    except FetchError as e:
        # git prints the URL as given, token and all.
        e.message = f"{e.message} ({redact_url(repository)})"
        e.details = redact_text(e.details) if e.details else e.details
        raise
    finally:
        shutil.rmtree(checkout, ignore_errors=True)
    return sha256_file(dest)


def _git(git: str, args: list[str], what: str) -> str:
    result = subprocess.run(
        [git, *args],
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
    )
    if result.returncode != 0:
        raise FetchError(f"git {what} failed", details=(result.stderr or result.stdout).strip())
    return result.stdout
