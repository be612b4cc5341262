"""Read what bootstrapper needs from a built wheel."""

from __future__ import annotations

import zipfile
from pathlib import Path

from packaging.utils import (
    InvalidWheelFilename,
    canonicalize_name,
    parse_wheel_filename,
)
from packaging.version import Version

from .errors import BuildError


def read_wheel_metadata(wheel: Path) -> bytes:
    """The bytes of the wheel's ``*.dist-info/METADATA``."""
    try:
        name, version, _, _ = parse_wheel_filename(wheel.name)
    except InvalidWheelFilename as e:
        raise BuildError(f"the backend produced an invalid wheel name {wheel.name!r}") from e
    try:
        with zipfile.ZipFile(wheel) as zf:
            candidates = [
                n for n in zf.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")
            ]
            for entry in candidates:
                dist_name, _, dist_version = entry.split("/")[0][: -len(".dist-info")].rpartition(
                    "-"
                )
                if canonicalize_name(dist_name) == name and Version(dist_version) == version:
                    return zf.read(entry)
            if len(candidates) == 1:
                return zf.read(candidates[0])
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise BuildError(f"{wheel.name} is not a readable wheel: {e}", package=name) from e
    raise BuildError(f"{wheel.name} has no .dist-info/METADATA", package=name)
