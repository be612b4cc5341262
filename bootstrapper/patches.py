"""Per-package patches: ``<name>/*.patch`` (every version), ``<name>/<version>/*.patch``
(one version) and ``<name>/variants/<variant>/*.patch``, applied in file-name order.

Layers are searched like settings: for one file name the first layer wins, so a user's
patch replaces a recipe's patch of the same name.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISDIR
from typing import Any

from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from .errors import BootstrapError
from .fsutil import sha256_file


class PatchError(BootstrapError):
    """A patch that does not apply."""


@dataclass(frozen=True)
class Patch:
    path: Path
    sha256: str

    def to_json(self) -> dict[str, str]:
        # Not the path: the same patch moved elsewhere (DIR/patches) is the same input.
        return {"file": self.path.name, "sha256": self.sha256}


def find_patches(
    layers: Sequence[Path], name: NormalizedName, version: Version, variant: str | None
) -> list[Patch]:
    """The patches for one package version (and variant), in application order."""
    chosen: dict[str, Path] = {}
    for layer in layers:
        for directory in _package_dirs(layer, name):
            candidates = [directory, *_version_dirs(directory, version)]
            if variant is not None:
                candidates.append(directory / "variants" / variant)
            for folder in candidates:
                if folder.is_dir():
                    for path in folder.glob("*.patch"):
                        chosen.setdefault(path.name, path)
    return [Patch(path, sha256_file(path)) for _, path in sorted(chosen.items())]


def _package_dirs(layer: Path, name: NormalizedName) -> list[Path]:
    return list(_LAYERS.projects(layer).get(name, ()))


class _LayerListings:
    """Each patch layer's package directories by project, listed again only when the
    layer's own entries changed (its mtime or inode): a run asks once per package, and
    listing every layer each time made that O(packages x layer size)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._listings: dict[Path, tuple[tuple[int, int], dict[NormalizedName, list[Path]]]] = {}

    def projects(self, layer: Path) -> Mapping[NormalizedName, list[Path]]:
        try:
            stat = layer.stat()
        except OSError:
            return {}
        if not S_ISDIR(stat.st_mode):
            return {}
        state = (stat.st_mtime_ns, stat.st_ino)
        with self._lock:
            found = self._listings.get(layer)
        if found is not None and found[0] == state:
            return found[1]
        listing: dict[NormalizedName, list[Path]] = {}
        for path in sorted(layer.iterdir()):
            if path.is_dir():
                listing.setdefault(canonicalize_name(path.name), []).append(path)
        with self._lock:
            self._listings[layer] = (state, listing)
        return listing


_LAYERS = _LayerListings()


def _version_dirs(directory: Path, version: Version) -> list[Path]:
    found = []
    for child in directory.iterdir():
        if not child.is_dir() or child.name == "variants":
            continue
        try:
            if Version(child.name) == version:
                found.append(child)
        except InvalidVersion:
            continue
    return found


def archived_patch(output_dir: Path, name: NormalizedName, version: Version, patch: Patch) -> Path:
    """Where a bootstrap keeps a patch it applied: ``DIR/patches/<name>/<version>/``."""
    return output_dir / "patches" / name / str(version) / patch.path.name


def patched_packages(layers: Sequence[Path]) -> set[NormalizedName]:
    """Every package some layer has a patch directory for."""
    return {
        canonicalize_name(p.name)
        for layer in layers
        if layer.is_dir()
        for p in layer.iterdir()
        if p.is_dir()
    }


#: How far the trial run looks, so that a hunk needing fuzz is reported as such rather
#: than as failed (patch never uses more fuzz than a hunk has context lines: 3 for diff -u).
PROBE_FUZZ = 3
_FILE = re.compile(
    r"^(?:checking|patching) (?:file|symbolic link) (?P<file>.+?)"
    r"(?: \((?:renamed|copied|read) from .+\))?$"
)
_HUNK = re.compile(
    r"^Hunk #(?P<hunk>\d+) (?P<outcome>succeeded|FAILED|ignored) at (?P<line>\d+)"
    r"(?: with fuzz (?P<fuzz>\d+))?(?: \(offset (?P<offset>-?\d+) lines?\))?\.$"
)
_PROBLEM = re.compile(r"malformed|Reversed|can't find file|No file to patch|Only garbage")


@dataclass(frozen=True)
class HunkReport:
    """One hunk that GNU patch did not apply exactly as written: moved (``offset``),
    fitted by ignoring context lines (``fuzz``), or not applied (``failed``)."""

    file: str
    hunk: int
    line: int
    offset: int = 0
    fuzz: int = 0
    failed: bool = False

    def to_json(self) -> dict[str, str | int]:
        return {
            "file": self.file,
            "hunk": self.hunk,
            "line": self.line,
            "offset": self.offset,
            "fuzz": self.fuzz,
        }

    def describe(self) -> str:
        return f"hunk #{self.hunk} of {self.file}"


def parse_patch_output(text: str) -> list[HunkReport]:
    """The per-hunk report of GNU patch (run with ``LC_ALL=C`` and
    ``--quoting-style=literal``): hunks that applied exactly are not mentioned."""
    reports = []
    current = ""
    for line in text.splitlines():
        file = _FILE.match(line)
        if file:
            current = file.group("file")
            continue
        hunk = _HUNK.match(line)
        if hunk:
            reports.append(
                HunkReport(
                    file=current,
                    hunk=int(hunk.group("hunk")),
                    line=int(hunk.group("line")),
                    offset=int(hunk.group("offset") or 0),
                    fuzz=int(hunk.group("fuzz") or 0),
                    failed=hunk.group("outcome") != "succeeded",
                )
            )
    return reports


@dataclass(frozen=True)
class AppliedPatch:
    """A patch as it applied: the hunks that needed an offset or fuzz."""

    patch: Patch
    hunks: tuple[HunkReport, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {**self.patch.to_json(), "hunks": [h.to_json() for h in self.hunks]}


@dataclass(frozen=True)
class PatchResults:
    applied: tuple[AppliedPatch, ...]
    #: What patch printed, for the build log.
    log: str


def apply_patches(
    source_dir: Path, patches: Sequence[Patch], *, fuzz: int = 0, package: str = "the package"
) -> PatchResults:
    """Apply ``patches`` to ``source_dir`` with ``patch -p1``, in order, allowing hunks to
    move but to ignore at most ``fuzz`` context lines. Each patch is tried first
    (``--dry-run``), so a hunk that fails, or needs more fuzz than allowed, raises
    PatchError naming the patch and the hunk before anything is changed by it."""
    tool = shutil.which("patch")
    if patches and tool is None:
        raise PatchError("the 'patch' program is needed to apply patches; install it")
    applied, output = [], []
    for patch in patches:
        trial = _run_patch(str(tool), source_dir, patch, max(fuzz, PROBE_FUZZ), dry_run=True)
        hunks = parse_patch_output(trial.stdout + trial.stderr)
        _check(patch, trial, hunks, fuzz, package)
        result = _run_patch(str(tool), source_dir, patch, fuzz, dry_run=False)
        text = result.stdout + result.stderr
        output.append(f"$ patch -p1 --fuzz={fuzz} -i {patch.path}\n{text}")
        if result.returncode != 0:  # the trial run said it would apply: should not happen
            raise PatchError(f"patch {patch.path} does not apply", details=_last_lines(text, hunks))
        applied.append(AppliedPatch(patch, tuple(parse_patch_output(text))))
    return PatchResults(tuple(applied), "".join(output))


def _run_patch(
    tool: str, source_dir: Path, patch: Patch, fuzz: int, *, dry_run: bool
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            tool,
            "-p1",
            "--forward",
            "--batch",
            "--no-backup-if-mismatch",
            f"--fuzz={fuzz}",
            "--quoting-style=literal",
            *(["--dry-run"] if dry_run else []),
            "-d",
            str(source_dir.absolute()),
            # Absolute: patch reads it after changing into the source directory.
            "-i",
            str(patch.path.absolute()),
        ],
        capture_output=True,
        text=True,
        # The report is parsed: patch's own words, not a translation.
        env={**os.environ, "LC_ALL": "C"},
        check=False,
    )


def _check(
    patch: Patch,
    trial: subprocess.CompletedProcess[str],
    hunks: Sequence[HunkReport],
    fuzz: int,
    package: str,
) -> None:
    if trial.returncode != 0:
        raise PatchError(
            f"patch {patch.path} does not apply",
            details=_last_lines(trial.stdout + trial.stderr, hunks),
        )
    fuzzy = [h for h in hunks if h.fuzz > fuzz]
    if fuzzy:
        needed = max(h.fuzz for h in fuzzy)
        allowed = f", more than the {fuzz} allowed" if fuzz else ""
        raise PatchError(
            f"patch {patch.path}: "
            + ", ".join(
                f"{h.describe()} applies only with fuzz {h.fuzz} (at line {h.line})" for h in fuzzy
            )
            + f"{allowed}; refresh the patch, or allow it with 'patch-fuzz: {needed}' in "
            f"{package}'s settings",
        )


def _last_lines(text: str, hunks: Sequence[HunkReport]) -> str:
    """What to show of a patch that does not apply: each failed hunk with its file, and
    patch's own complaints; else the end of its output."""
    failed = [f"{h.file}: Hunk #{h.hunk} FAILED at {h.line}." for h in hunks if h.failed]
    problems = [line for line in text.splitlines() if _PROBLEM.search(line)]
    return "\n".join(failed + problems or text.strip().splitlines()[-5:])
