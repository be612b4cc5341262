"""Build records: what went into a wheel. They let a re-run prove a wheel still valid."""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .fsutil import FileState, atomic_write_text, file_state

RECORD_SUFFIX = ".build.json"
RECORD_SCHEMA = 1


@dataclass(frozen=True, order=True)
class EnvWheel:
    """One wheel installed in a build environment."""

    name: str
    version: str
    filename: str
    sha256: str


@dataclass(frozen=True)
class BuildRecord:
    name: str
    version: str
    wheel: str
    wheel_sha256: str
    sdist: str
    sdist_sha256: str
    source_url: str
    build_backend: str
    build_system_requires: tuple[str, ...]
    backend_requires: tuple[str, ...]
    #: The environment the backend was asked for its requirements in.
    discovery_env: tuple[EnvWheel, ...]
    #: The environment the wheel was built in.
    build_env: tuple[EnvWheel, ...]
    python: str
    tool_versions: dict[str, str] = field(default_factory=dict)
    started: str = ""
    finished: str = ""
    log: str = ""
    #: Settings, patches (with sha256), environment and variant that applied.
    plan: dict[str, Any] = field(default_factory=dict)
    rebuild: int = 0
    #: The environment variables bootstrapper set for the build.
    environment: dict[str, str] = field(default_factory=dict)
    #: "prebuilt" when the build failed and --fallback-prebuilt took the index's wheel.
    fallback: str | None = None
    #: Each patch as it applied: the hunks that moved (offset) or needed fuzz.
    patches_applied: list[dict[str, Any]] = field(default_factory=list)
    #: The sha256 of the upstream source archive (what the index serves); ``sdist`` and
    #: ``sdist_sha256`` name the archive built from, which differs when crates were
    #: vendored into it. Empty in records written before vendoring existed.
    upstream_sha256: str = ""
    #: What was vendored into the source (tool, upstream file, manifests, crates).
    vendored: dict[str, Any] = field(default_factory=dict)
    #: The names (never the values) of the user's variables passed with --pass-env.
    pass_env: list[str] = field(default_factory=list)
    #: The package's ``resources:`` setting (what it needs of a Dask worker), so that a
    #: rebuild of the build order asks for the same; not part of ``plan``: it decides
    #: where a wheel is built, not what.
    resources: dict[str, float] = field(default_factory=dict)
    #: The share of the machine's cores the build got (``cores``, of ``machine``), the
    #: variables that told its tools, and the package's ``exclusive``/``cores``/``memory``
    #: settings; not part of ``plan``: it decides how fast, not what, is built.
    cores: dict[str, Any] = field(default_factory=dict)
    #: The Dask worker the wheel was built on (``--dask``); None on the coordinating machine.
    worker: str | None = None
    #: What ``repair: true`` did (see :mod:`.repair`): the wheel it was made from, the
    #: auditwheel run, the libraries grafted and excluded; or why nothing was done.
    #: Empty for a wheel published as built without being asked to be repaired.
    repair: dict[str, Any] = field(default_factory=dict)
    schema: int = RECORD_SCHEMA

    @property
    def python_label(self) -> str:
        """The Python the wheel was built with, as ``3.12`` (from :attr:`python`,
        ``cpython 3.12.7 (linux, x86_64)``); empty if the record does not say."""
        match = re.search(r"\b(\d+)\.(\d+)", self.python)
        return f"{match[1]}.{match[2]}" if match else ""

    @property
    def repaired(self) -> bool:
        """Whether this wheel is a repaired one (not what the build made: that one is
        named in ``repair``)."""
        return bool(self.repair.get("repaired"))

    @property
    def source_sha256(self) -> str:
        """The sha256 of the upstream source this wheel was built from."""
        return self.upstream_sha256 or self.sdist_sha256

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> BuildRecord:
        data: dict[str, Any] = json.loads(text)
        if data.get("schema") != RECORD_SCHEMA:
            raise ValueError(f"unsupported build record schema {data.get('schema')!r}")
        for key in ("discovery_env", "build_env"):
            data[key] = tuple(EnvWheel(**w) for w in data[key])
        for key in ("build_system_requires", "backend_requires"):
            data[key] = tuple(data[key])
        return cls(**data)

    def write(self, path: Path) -> None:
        atomic_write_text(path, self.to_json())


def read_record(path: Path) -> BuildRecord | None:
    """The record at ``path``, or ``None`` when it is missing or unreadable."""
    try:
        return BuildRecord.from_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError, KeyError):
        return None


def records_in(directories: Iterable[Path]) -> Iterator[tuple[Path, BuildRecord]]:
    """Every build record (``*.whl.build.json``) in ``directories``, in their order, with
    the path of the wheel beside it. A record file hard-linked into several directories
    (a published record most often is the stored one), or listed again, is read once
    while it is unchanged and given again as the same object; unreadable ones are left
    out."""
    for directory in directories:
        if not directory.is_dir():
            continue
        for path in directory.glob("*.whl" + RECORD_SUFFIX):
            try:
                stat = path.stat()
            except OSError:
                continue
            record = _READ.record(path, stat)
            if record is not None:
                yield path.with_name(path.name[: -len(RECORD_SUFFIX)]), record


class _ReadRecords:
    """The records this process has read, by their file's state (``fsutil.file_state``):
    the store, the report, the SBOM and the ETA each list the same records in a run,
    and a file is parsed again only once it changed."""

    def __init__(self, limit: int = 100_000) -> None:
        self._lock = threading.Lock()
        self._read: dict[FileState, BuildRecord | None] = {}
        self._limit = limit

    def record(self, path: Path, stat: os.stat_result) -> BuildRecord | None:
        key = file_state(stat)
        with self._lock:
            if key in self._read:
                return self._read[key]
        record = read_record(path)
        with self._lock:
            if len(self._read) >= self._limit:
                self._read.clear()
            return self._read.setdefault(key, record)


_READ = _ReadRecords()
