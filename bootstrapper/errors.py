"""The one exception hierarchy of bootstrapper.

Every user-facing failure is a :class:`BootstrapError`. It carries the package it is
about, the chain of requirements that led to it and where the full log is, so that the
CLI can print one clear message and never a traceback.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


class BootstrapError(Exception):
    """Root of every error bootstrapper reports to its user."""

    def __init__(
        self,
        message: str,
        *,
        package: str | None = None,
        chain: Sequence[str] = (),
        log_path: Path | None = None,
        details: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.package = package
        self.chain = tuple(chain)
        self.log_path = log_path
        self.details = details

    def with_context(
        self, *, chain: Sequence[str] | None = None, log_path: Path | None = None
    ) -> BootstrapError:
        """Fill in the chain and log path if the raiser did not know them."""
        if chain is not None and not self.chain:
            self.chain = tuple(chain)
        if log_path is not None and self.log_path is None:
            self.log_path = log_path
        return self

    def render(self) -> str:
        """The full message for a person: what, where it came from, and where to look."""
        lines = [f"error: {self.message}"]
        if self.chain:
            lines.append(f"  required by: {' -> '.join(self.chain)}")
        if self.details:
            lines.extend(f"  {line}" if line else "" for line in self.details.splitlines())
        if self.log_path is not None:
            lines.append(f"  full log: {self.log_path}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.render()


class UsageError(BootstrapError):
    """The command line itself is wrong (exit status 2)."""


class InvalidRequirementError(BootstrapError):
    """A requirement string that cannot be parsed."""


class IndexAccessError(BootstrapError):
    """The source index could not be read."""


class ReleaseAgeUnsupportedError(IndexAccessError):
    """``--exclude-newer`` or ``--min-release-age`` on an index that gives no upload
    times (PEP 700)."""


class UnknownProjectError(BootstrapError):
    """The index does not know the project at all."""


class NoSourceDistributionError(BootstrapError):
    """The project exists but offers no usable sdist."""


class ResolutionError(BootstrapError):
    """No set of versions satisfies the requirements."""


class FetchError(BootstrapError):
    """A download failed."""


class HashMismatchError(FetchError):
    """Downloaded bytes do not match the hash the index published."""


class UnsafeArchiveError(BootstrapError):
    """An archive tried to write outside its directory or holds unsupported members."""


class InvalidSourceError(BootstrapError):
    """An unpacked source tree is not a buildable project (bad pyproject.toml, ...)."""


class BuildError(BootstrapError):
    """A PEP 517 hook or the build environment failed."""


class BuildTimeoutError(BuildError):
    """A backend call ran longer than its build timeout and was ended."""


class BuildCycleError(BootstrapError):
    """Packages need each other to be built."""


class MetadataMismatchError(BootstrapError):
    """A built wheel disagrees with the metadata used to resolve it, and re-resolving did
    not settle."""


class VendoringError(BuildError):
    """A source's Rust crates could not be vendored before its offline build."""


class OutputDirInUseError(BootstrapError):
    """Another process holds the lock of the output directory."""


class UnusableOutputDirError(UsageError):
    """The output directory is a file, or cannot be created or written (exit status 2:
    the user chose it)."""


class UnsafeArchiveSizeError(UnsafeArchiveError):
    """An archive unpacks to more than the configured bounds (a decompression bomb)."""


class ProjectNotAllowedError(BootstrapError):
    """A project the review gate (``--allowed-projects``) does not list."""


class InternalError(BootstrapError):
    """A bug: an exception no layer expected, reported without a traceback (which goes to
    a file the message names)."""
