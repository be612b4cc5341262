"""Requirements and constraints files (the subset of pip's format a bootstrap needs)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from .credentials import redact_text
from .errors import InvalidRequirementError, UsageError

#: pip's rule: ``#`` at the start of a line or after white space starts a comment.
_COMMENT = re.compile(r"(^|\s+)#.*$")


@dataclass
class RequirementSet:
    requirements: list[Requirement] = field(default_factory=list)
    constraints: list[Requirement] = field(default_factory=list)


def parse_requirement(
    text: str, where: str = "command line", *, direct_url: bool = False
) -> Requirement:
    """``text`` as a requirement; a direct URL (``name @ URL``) only with ``direct_url``:
    a bootstrap resolves names against the index, and taking the name alone would build
    something else than what was asked for."""
    try:
        requirement = Requirement(text)
    except InvalidRequirement as e:
        raise InvalidRequirementError(
            f"malformed requirement {redact_text(text)!r} ({where}): {e}", package=text
        ) from None
    if requirement.url and not direct_url:
        name = canonicalize_name(requirement.name)
        raise UsageError(
            f"{redact_text(text)!r} ({where}): a direct URL requirement is not supported; "
            f"ask for {requirement.name} by version and give its source in the package's "
            f"settings (OVERRIDES/settings/{name}.yaml: source: {{url: ...}})"
        )
    return requirement


def read_file(
    path: Path, into: RequirementSet, *, constraints: bool, _seen: frozenset[Path] = frozenset()
) -> None:
    """Add the requirements (or constraints) of ``path``, following ``-r``/``-c``."""
    resolved = path.resolve()
    if resolved in _seen:
        raise UsageError(f"{path}: includes itself")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror or e}") from None
    logical: list[tuple[int, str]] = []
    pending = ""
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if not pending:
            start = number
        line = _COMMENT.sub("", raw)
        if line.endswith("\\"):
            pending += line[:-1]
            continue
        logical.append((start, (pending + line).strip()))
        pending = ""
    if pending:
        logical.append((start, pending.strip()))
    for number, line in logical:
        where = f"{path}:{number}"
        if not line:
            continue
        for option, is_constraint in (
            ("-r", False),
            ("--requirement", False),
            ("-c", True),
            ("--constraint", True),
        ):
            if line.startswith(option + " ") or line.startswith(option + "="):
                target = line[len(option) + 1 :].strip()
                read_file(
                    path.parent / target,
                    into,
                    constraints=constraints or is_constraint,
                    _seen=_seen | {resolved},
                )
                break
        else:
            if line.startswith("-"):
                raise UsageError(f"{where}: unsupported option {line.split()[0]!r}")
            requirement = parse_requirement(line, where)
            (into.constraints if constraints else into.requirements).append(requirement)
