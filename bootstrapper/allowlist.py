"""The review gate: ``--allowed-projects FILE`` lists the projects a run may build.

A team keeps the file in version control; a project that a new release, a new
requirement or a changed marker pulls into the tree stops the run before it is built (or,
with ``--keep-going``, fails alone), named with the chain that pulled it in, until someone
has looked at it and added it to the list.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import NormalizedName, canonicalize_name

from .errors import ProjectNotAllowedError, UsageError

#: A project name (PEP 508).
_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)


@dataclass(frozen=True)
class AllowedProjects:
    names: frozenset[NormalizedName]
    #: The file the list came from, as the user named it (for messages).
    source: Path

    def allows(self, name: NormalizedName) -> bool:
        return name in self.names

    def refuse(self, name: NormalizedName, chain: Sequence[str]) -> ProjectNotAllowedError:
        """The error for one project the list does not name."""
        return ProjectNotAllowedError(
            f"{name} is not on the list of allowed projects ({self.source})",
            package=name,
            chain=chain,
            details=f"review it, then add it to {self.source} to let it in",
        )

    def refuse_all(
        self, names: Iterable[NormalizedName], chains: Mapping[NormalizedName, Sequence[str]]
    ) -> ProjectNotAllowedError:
        """One error naming every project of a resolved set the list does not name, each
        with the chain that pulled it in."""
        refused = sorted(set(names))
        if len(refused) == 1:
            return self.refuse(refused[0], chains.get(refused[0], (refused[0],)))
        lines = [f"  {name}: {' -> '.join(chains.get(name, (name,)))}" for name in refused]
        return ProjectNotAllowedError(
            f"{len(refused)} projects are not on the list of allowed projects "
            f"({self.source}): {', '.join(refused)}",
            package=refused[0],
            details="pulled in by:\n"
            + "\n".join(lines)
            + f"\nreview them, then add them to {self.source} to let them in",
        )


def parse_allowed_projects(text: str, source: Path) -> AllowedProjects:
    """One project name per line; ``#`` starts a comment; blank lines are ignored. Every
    malformed line is reported (a UsageError), not only the first."""
    names: set[NormalizedName] = set()
    problems: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        if not _NAME.match(entry):
            problems.append(f"{source}:{number}: {entry!r} is not a project name")
            continue
        names.add(canonicalize_name(entry))
    if problems:
        raise UsageError("\n".join(problems))
    return AllowedProjects(frozenset(names), source)


def read_allowed_projects(path: Path) -> AllowedProjects:
    try:
        text = path.read_text(encoding="utf-8-sig")  # an editor's byte-order mark is no name
    except OSError as e:
        raise UsageError(f"cannot read the allowed projects file {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"the allowed projects file {path} is not UTF-8 text") from None
    return parse_allowed_projects(text, path)
