"""Per-package patches: ``<name>/*.patch`` (every version), ``<name>/<version>/*.patch``
(one version) and ``<name>/variants/<variant>/*.patch``, applied in file-name order.

Layers are searched like settings: for one file name the first layer wins, so a user's
patch replaces a recipe's patch of the same name.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

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
    if not layer.is_dir():
        return []
    return [p for p in layer.iterdir() if p.is_dir() and canonicalize_name(p.name) == name]


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


def apply_patches(source_dir: Path, patches: Sequence[Patch]) -> str:
    """Apply ``patches`` to ``source_dir`` with ``patch -p1``; returns their output. A
    patch that does not apply raises PatchError naming the file and the failed hunks."""
    tool = shutil.which("patch")
    if patches and tool is None:
        raise PatchError("the 'patch' program is needed to apply patches; install it")
    output = []
    for patch in patches:
        result = subprocess.run(
            [
                str(tool),
                "-p1",
                "--forward",
                "--batch",
                "--no-backup-if-mismatch",
                "-d",
                str(source_dir.absolute()),
                # Absolute: patch reads it after changing into the source directory.
                "-i",
                str(patch.path.absolute()),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        text = result.stdout + result.stderr
        output.append(f"$ patch -p1 -i {patch.path}\n{text}")
        if result.returncode != 0:
            hunks = [line for line in text.splitlines() if "FAILED" in line or "malformed" in line]
            raise PatchError(
                f"patch {patch.path} does not apply",
                details="\n".join(hunks or text.strip().splitlines()[-5:]),
            )
    return "".join(output)
