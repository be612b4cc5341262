"""Read a source tree's PEP 518 ``[build-system]`` table."""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from .errors import InvalidSourceError
from .metadata import requirement_key

#: What pip assumes for a project without a ``[build-system]`` table.
LEGACY_REQUIRES = ("setuptools>=40.8.0",)
LEGACY_BACKEND = "setuptools.build_meta:__legacy__"


@dataclass(frozen=True)
class BuildSystem:
    requires: tuple[Requirement, ...]
    backend: str
    backend_path: tuple[str, ...] = ()
    legacy: bool = False


def read_build_system(source_dir: Path, package: str) -> BuildSystem:
    """The build system declared by ``source_dir`` (PEP 517/518 defaults applied)."""
    pyproject = source_dir / "pyproject.toml"
    table: dict[str, object] | None = None
    if pyproject.is_file():
        try:
            document = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise InvalidSourceError(
                f"{package}: invalid pyproject.toml: {e}", package=package
            ) from e
        raw = document.get("build-system")
        if raw is not None and not isinstance(raw, dict):
            raise InvalidSourceError(f"{package}: [build-system] is not a table", package=package)
        table = raw
    if table is None:
        return BuildSystem(
            requires=tuple(Requirement(r) for r in LEGACY_REQUIRES),
            backend=LEGACY_BACKEND,
            legacy=True,
        )
    raw_requires = table.get("requires")
    if not isinstance(raw_requires, list) or not all(isinstance(r, str) for r in raw_requires):
        raise InvalidSourceError(
            f"{package}: [build-system].requires must be a list of strings", package=package
        )
    requires = []
    for raw_req in raw_requires:
        try:
            requires.append(Requirement(raw_req))
        except InvalidRequirement as e:
            raise InvalidSourceError(
                f"{package}: malformed build requirement {raw_req!r}: {e}", package=package
            ) from e
    backend = table.get("build-backend")
    backend_path = table.get("backend-path", [])
    if not isinstance(backend_path, list) or not all(isinstance(p, str) for p in backend_path):
        raise InvalidSourceError(
            f"{package}: [build-system].backend-path must be a list of strings", package=package
        )
    if backend is None:
        return BuildSystem(requires=tuple(requires), backend=LEGACY_BACKEND, legacy=True)
    if not isinstance(backend, str):
        raise InvalidSourceError(f"{package}: build-backend must be a string", package=package)
    return BuildSystem(requires=tuple(requires), backend=backend, backend_path=tuple(backend_path))


def beyond_declared(
    build_system: BuildSystem, requested: Sequence[Requirement]
) -> list[Requirement]:
    """What the backend asked for beyond the declared ``requires``: the requirements that
    make the build environment bigger than the discovery one."""
    declared = {requirement_key(r) for r in build_system.requires}
    return [r for r in requested if requirement_key(r) not in declared]
